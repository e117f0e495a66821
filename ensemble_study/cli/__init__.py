"""The ``ensemble-study`` command line: thin click commands over the library.

Three kinds of command, listed apart in ``--help``:

* studies: one per study, generated from its declaration
  (:func:`ensemble_study.cli.study_commands.study_command`);
* tools: ``train`` and ``evaluate``, on one network (:mod:`.tools`);
* maintenance: ``reproduce``, ``figures``, ``report``, ``bench`` (:mod:`.maintenance`).

Commands hold no science: they validate their options, call the library,
and save what it returns.
"""

from __future__ import annotations

import click

from .. import __version__
from ..results import environmental, one_line
from ..studies import registry
from . import maintenance, tools
from .options import Command, usage_error  # noqa: F401  (re-exported for callers)
from .study_commands import print_summary, study_command

SECTIONS = ("Studies", "Tools", "Maintenance")


class Group(click.Group):
    """A group that lists its commands by section, with their short help uncut."""

    command_class = Command

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sections: dict[str, str] = {}

    def add_to(self, section: str, command: click.Command) -> None:
        self.add_command(command)
        self.sections[command.name] = section

    def format_commands(self, ctx, formatter):
        rows = {s: [] for s in SECTIONS}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            # The whole first sentence: click's default cuts at the first full
            # stop, which would end "Srivastava et al." after "al".
            text = command.short_help or (command.help or "").split("\n\n")[0]
            rows[self.sections.get(name, "Maintenance")].append((name, " ".join(text.split())))
        for section in SECTIONS:
            if rows[section]:
                with formatter.section(section):
                    formatter.write_dl(rows[section])

    def list_commands(self, ctx):
        return list(self.commands)  # in the order they were added, not alphabetical

    def invoke(self, ctx):
        """Run the command; the machine's failures (no space, read-only, permission)
        and Ctrl-C end it with one line, not a traceback."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted: files are written whole or not at all, and a study's "
                       "finished cells are kept under .cells/; rerun the same command to "
                       "resume", err=True)
            ctx.exit(130)
        except FloatingPointError as exc:  # an ensemble that came out NaN (overflow)
            raise click.ClickException(str(exc)) from None
        except ConnectionError as exc:  # no scheduler reachable, or lost during the run
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else
                                       type(exc).__name__) from None
        except OSError as exc:
            if not environmental(exc):
                raise
            raise click.ClickException(one_line(exc)) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="ensemble-study")
def main():
    """Exact dropout ensembles against the approximations everyone uses.

    Each study command writes a CSV (plus a JSON sidecar with its parameters)
    under results/; `figures` redraws every PNG under figures/ from those
    CSVs; `reproduce` runs every default study, then `figures`, then
    regenerates the README's numbers.

    Studies run their cells on every core (--jobs) or on Dask (--scheduler),
    and store each finished cell under .cells/ next to their CSV, so that an
    interrupted run resumes where it stopped (--fresh: start over).

    Shell completion (bash): eval "$(_ENSEMBLE_STUDY_COMPLETE=bash_source ensemble-study)".
    """


for _study in registry().values():
    main.add_to("Studies", study_command(_study))
for _command in tools.COMMANDS:
    main.add_to("Tools", _command)
for _command in maintenance.COMMANDS:
    main.add_to("Maintenance", _command)


@main.command("approximations-summary", hidden=True)
@click.option("--results", "path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Deprecated: the approximations study's CSV.")
def approximations_summary(path):
    """Deprecated: use `ensemble-study approximations --summary`."""
    from pathlib import Path

    click.echo("warning: approximations-summary is deprecated; use "
               "`ensemble-study approximations --summary --results DIR`", err=True)
    folder = Path(path).parent if path else Path("results")
    print_summary(registry()["approximations"], folder)
