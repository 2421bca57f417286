"""Course tooling behind the ``cbam-course`` command (``cli``).

* ``building`` (``cbam-course build``): each lesson's reference and learner notebooks, from its
  source in ``solutions/``;
* ``grading`` (``cbam-course grade``): submitted notebooks, graded against the executed
  references.
"""
