"""The bureau's mailroom clerk, as the process that registers returned paper forms, and
the test kit's harness over it."""
