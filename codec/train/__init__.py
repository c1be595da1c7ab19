"""Training: ``python -m lqz.train --data DIR --run NAME`` (resumes automatically).

Also ``lqz.train.device`` (a wall-clock-budget run for a GPU window), ``lqz.train.pack`` (its
training pack), ``lqz.train.export``, ``lqz.train.ladder`` and ``lqz.train.migrate``.
"""
