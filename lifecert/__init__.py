"""lifecert: event-sourced integration hub for pension eligibility certification."""

__version__ = "0.1.0"
