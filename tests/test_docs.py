"""The README and docs/: links that resolve, code blocks run or marked, the pipeline picture kept true to dvc.yaml."""

import re
from pathlib import Path

import yaml
from support import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    heads = re.findall(r"^#{1,6} (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_every_relative_link_reaches_a_file_and_its_heading():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists() or (anchor and anchor not in anchors(dest)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


COMMANDS = ("bash", "python")  # a code block in one of these is run by a test or says why not
NOT_COMMANDS = ("text", "yaml", "mermaid")  # layouts, params, pictures


def test_every_command_block_is_run_by_a_test_or_says_why_not():
    """A ```bash or ```python block has, in the HTML comments right above it, `<!-- run by tests/X.py ... -->`
    (and tests/X.py reads that page) or `<!-- not run...: why -->`; every block names its language."""
    unmarked = []
    for page in PAGES:
        text = page.read_text()
        for block in re.finditer(r"^```(\w*)\n.*?^```", text, re.S | re.M):
            where = f"{page.relative_to(ROOT)}:{text[:block.start()].count(chr(10)) + 1}"
            lang = block.group(1)
            assert lang in COMMANDS + NOT_COMMANDS, f"{where}: a code block in {lang or 'no language'}"
            comments = re.findall(r"(?:^<!-- .* -->\n)+\Z", text[:block.start()], re.M)
            marks = re.findall(r"<!-- (run by (tests/[\w/]+\.py).*|not run[^:]*: .+) -->", comments[0] if comments else "")
            if lang not in COMMANDS:
                continue
            if not marks:
                unmarked.append(where)
            for _, test in marks:
                if test:  # the test named must read this page
                    assert str(page.relative_to(ROOT)) in (ROOT / test).read_text(), f"{where}: {test} does not read it"
    assert not unmarked, "blocks neither run by a test nor marked not run: " + ", ".join(unmarked)


def test_the_readme_is_short_and_names_no_issue():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert not re.search(r"\bissue \d+", text)


def stage_edges() -> set[tuple[str, str]]:
    """dvc.yaml's DAG: a -> b when b depends on an output of a (or on a folder holding one); a matrix
    stage (finetune@..., ablate_<grid>@...) under its family's name, as the picture draws it."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]

    def family(name: str) -> str:
        return "ablate" if name.startswith("ablate_") else name

    def paths(entries) -> list[str]:
        return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]

    outs = {name: paths(s.get("outs")) + paths(s.get("metrics")) + paths(s.get("plots")) for name, s in stages.items()}
    edges = set()
    for b, spec in stages.items():
        for dep in paths(spec.get("deps")):
            for a, produced in outs.items():
                if any(out == dep or out.startswith(dep.rstrip("/") + "/") for out in produced):
                    edges.add((family(a), family(b)))
    return edges


def test_the_readme_pipeline_picture_is_dvc_yaml_dag():
    block = re.search(r"```mermaid\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    drawn = set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", block, re.M))
    assert drawn == stage_edges()


def test_the_params_reference_is_what_the_declaration_generates():
    """docs/params.md's table is `simclr params-reference`'s output: regenerate it with `--write`."""
    from simclr.core.params_reference import REFERENCE_END, REFERENCE_START, params_reference

    page = (ROOT / "docs/params.md").read_text()
    committed = REFERENCE_START + page.split(REFERENCE_START, 1)[1].split(REFERENCE_END, 1)[0] + REFERENCE_END
    assert committed == params_reference()


def test_every_key_of_params_yaml_is_documented_where_it_is_declared():
    from simclr.core.config import dotted
    from simclr.core.params_reference import reference_rows

    documented = {key for key, _, _ in reference_rows()}
    assert set(dotted(yaml.safe_load((ROOT / "params.yaml").read_text()))) - documented == set()


def test_params_reference_writes_the_table_between_the_markers_and_refuses_a_page_without_them(tmp_path):
    from support import BIN, run

    from simclr.core.params_reference import REFERENCE_END, REFERENCE_START, params_reference

    page = tmp_path / "params.md"
    page.write_text(f"# Params\n\nabove\n\n{REFERENCE_START}\nstale\n{REFERENCE_END}\n\nbelow\n")
    run([str(BIN / "simclr"), "params-reference", "--write", "--page", str(page)], tmp_path)
    assert page.read_text() == f"# Params\n\nabove\n\n{params_reference()}\n\nbelow\n"
    page.write_text("# Params\n")
    bad = run([str(BIN / "simclr"), "params-reference", "--write", "--page", str(page)], tmp_path, check=False)
    assert bad.returncode == 2 and "has no generated params table" in bad.stderr and page.read_text() == "# Params\n"
    gone = run([str(BIN / "simclr"), "params-reference", "--write", "--page", str(tmp_path / "no.md")], tmp_path,
               check=False)
    assert gone.returncode == 2 and "no.md does not exist" in gone.stderr
