"""Every command of ``ensemble-study`` as an attribute, for sphinx-click.

``.. click:: cli_commands:NAME`` documents one command; ``conf.py`` writes one
such page per command of ``ensemble_study.cli:main``, so a new command gets its
page without an edit here.
"""

from ensemble_study.cli import main


def __getattr__(name):
    try:
        return main.commands[name]
    except KeyError:
        raise AttributeError(f"ensemble-study has no command {name!r}") from None
