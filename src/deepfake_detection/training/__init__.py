"""Training: configuration, labelled data, the phased recipe -> a bundle (inference's format)."""
