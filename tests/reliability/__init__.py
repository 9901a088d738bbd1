"""Reliability suite: every way a hostile or unlucky user can break a run, and what they get."""
