"""Child-process entry points: each runs in its own interpreter so the bench measures it alone."""
