"""``tinyedge test``."""

from __future__ import annotations

from pathlib import Path

import click

from ..runners.renode import run_robot, write_renode_files


@click.command("test")
@click.argument("project_dir", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--results", "results", type=click.Path(path_type=Path), default=None,
              help="Folder for renode-test's reports (default: PROJECT_DIR/renode/results).")
@click.option("--write-only", is_flag=True, help="Only write PROJECT_DIR/renode/<board>.resc and .robot; run nothing.")
def cmd(project_dir: Path, results: Path | None, write_only: bool) -> None:
    """Run PROJECT_DIR's Robot Framework suite in Renode (renode-test): boot, m-init-done, one inference
    checked bit for bit against tflite_micro.

    The .resc and .robot files are generated into PROJECT_DIR/renode/ first (for boards Renode models).
    """
    if write_only:
        files = write_renode_files(project_dir)
        click.echo(f"wrote {files.resc}\nwrote {files.robot}")
        return
    code = run_robot(project_dir, results_dir=results, echo=lambda msg: click.echo(msg))
    if code:
        raise click.exceptions.Exit(code)
