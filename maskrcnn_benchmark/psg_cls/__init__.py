"""The NTU CE7454 (2022) "PSG classification" task: predict an image's 3 most salient predicates.

Scored by mean recall@3 over the 50 non-positional PSG predicates (``metric``); the
grader's file formats are in ``grader``; ``class_lists``, ``sampling`` and the loss
weights of ``engine`` are the class-imbalance tricks of the student report.
"""
