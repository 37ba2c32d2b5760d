"""Synthetic faces, the photos they start from and the threshold calibration, for the face
tests and the face benchmark."""
