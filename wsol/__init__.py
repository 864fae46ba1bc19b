"""Weakly-supervised object localisation with a dual-branch (softmax + sigmoid) head."""
