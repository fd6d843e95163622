"""The dedicated layout: actor ranks that only play and learner ranks that only train, launched by one torchrun.

`roles` splits the job, `bridge` carries samples (actors → learner rank 0) and weights (learner rank 0 →
actors, bucket by bucket), `actor` and `learner_loop` are the two sides' loops. See docs/layouts.md.
"""
