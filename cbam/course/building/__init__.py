"""``cbam-course build``: from ``solutions/NN_slug.py`` to the reference and learner notebooks.

``lessons`` reads a lesson's source, ``stubs`` turns solutions into stubs, ``compose`` makes
the two notebooks (with ``colab``'s setup cell, configured by ``config``), ``execute`` runs the
reference, and ``builder`` writes them or checks that they match their source.
"""
