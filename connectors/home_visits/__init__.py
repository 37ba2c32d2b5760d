"""The home-visits door: district home-visit teams report visit results (issue 14)."""
