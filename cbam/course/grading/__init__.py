"""``cbam-course grade``: a submission's exercises, run inside the executed reference notebook.

``grader`` is the command. ``notebook`` reads a submission, ``references`` the lesson's
reference, ``submission`` matches their exercises and ``tamper`` flags what no exercise needs.
``graded_run`` runs the graded copy under nbval, with ``nbval_capture`` recording each cell and
``kernel_guard`` watching the kernel. ``report``, ``gradebook`` and ``class_report`` say what came
of it, for one learner and for a class.

Kept light: the kernel of every graded run imports ``kernel_guard`` from here.
"""
