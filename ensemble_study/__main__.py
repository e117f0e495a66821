"""``python -m ensemble_study`` runs the ``ensemble-study`` command (handy in a
checkout that is not the installed one: ``PYTHONPATH=. python -m ensemble_study``)."""

from .cli import main

if __name__ == "__main__":
    main()
