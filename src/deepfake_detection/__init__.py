"""deepfake-detection: tell real photographs from AI-generated images, and show the evidence."""

__version__ = "0.1.0"
