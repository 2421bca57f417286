"""Course tooling behind the ``cbam-course`` command (``cli``).

* ``build``: each lesson's reference and learner notebooks, from its source in ``solutions/``;
* ``grade``: submitted notebooks, graded against the executed references.
"""
