"""Course tooling: building the notebooks, grading submissions, the ``cbam-course`` command."""
