"""tokenhub: meter, rate and explain a token economy."""

__version__ = "0.1.0"
