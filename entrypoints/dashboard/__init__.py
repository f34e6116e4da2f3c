"""The Panel dashboard: label in the latent space, follow the queue, train in the background.

Pages call the application services through the container; no model or label logic here.
"""
