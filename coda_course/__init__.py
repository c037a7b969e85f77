"""coda_course: the course and the lab around the coda_edu library.

coda_edu trains, evaluates and explains one run; this package is what a course and a study
build on it, and it imports coda_edu, never the reverse:

- for the notebooks: the interactive explorers (``widgets``, their kernel-free ``static`` states
  and ``plotly_figures``), the exercises and their checks (``exercises``), the analysis helpers
  (``analysis``, ``bias``);
- for instructors: running, syncing and checking the notebook series (``notebooks``), the
  course pack of pre-trained runs (``course_pack``);
- for studies: several methods at one setting (``protocol``), independent runs over devices
  (``sweep_devices``), datasets checked and moved between machines (``datasets_cli``, ``pack``).

Its commands (``coda-edu notebooks | data | protocol | course``) join the ``coda-edu`` command
through the entry-point group ``coda_edu.commands`` (pyproject.toml).
"""
