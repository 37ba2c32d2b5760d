"""Macau SSF simulator (a real HTTPS process with client certificates) and its harnesses."""
