"""Episodic meta-training of the hypernetwork (paper Algorithm 1; docs/design.md §4)."""
