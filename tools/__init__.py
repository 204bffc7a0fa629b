"""Development tools used from the checkout (never installed, never shipped to a cluster):
``tools.groundtruth`` generates labelled test datasets and scores sparkdup's tables."""
