"""The README quotes the committed benchmark JSON and nothing else."""

from benchmarks.readme_figures import ROOT, section


def test_the_readme_benchmarks_section_is_the_one_the_stored_results_give() -> None:
    assert section() in (ROOT / "README.md").read_text(), (
        "README's Benchmarks section differs from benchmarks/results/*.json: run "
        "python -m benchmarks.readme_figures")
