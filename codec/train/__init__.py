"""Training: ``python -m lqz.train --data DIR --run NAME`` (resumes automatically)."""
