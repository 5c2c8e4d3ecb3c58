"""Episodic meta-training of the hypernetwork (paper Algorithm 1; DESIGN.md section 4)."""
