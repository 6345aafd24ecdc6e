#!/usr/bin/env python3
"""Inputs/outputs tables of the Terraform module READMEs, generated from the code.

    module_docs.py --write   rewrite the tables between the markers of every README
    module_docs.py --check   exit 1 if a README's tables differ from the code (run.sh)

Covers terraform/modules/*/README.md (the environments are documented in docs/deploy.md
and terraform/README.md). The tables sit between
`<!-- BEGIN_TF_DOCS -->` and `<!-- END_TF_DOCS -->`; the rest of each README is prose.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2] / "terraform" / "modules"
BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"


def blocks(text, kind):
    """Yield (name, body) of every top-level `kind "name" { ... }` block."""
    for m in re.finditer(rf'^{kind} "([^"]+)" \{{\n', text, re.M):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        yield m.group(1), text[m.end():i - 1]


def attr(body, key):
    """The expression of a top-level attribute (multi-line when brackets are open)."""
    m = re.search(rf"^  {key}\s+=\s*(.*)$", body, re.M)
    if not m:
        return None
    expr, rest = m.group(1), body[m.end():].split("\n")
    depth = sum(expr.count(c) for c in "([{") - sum(expr.count(c) for c in ")]}")
    for line in rest:
        if depth <= 0:
            break
        expr += " " + line.strip()
        depth += sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
    return re.sub(r"\s+", " ", expr).strip()


def unquote(s):
    if s and s.startswith('"') and s.endswith('"'):
        return s[1:-1].replace('\\"', '"')
    return s


def cell(s):
    return (s or "").replace("|", "\\|")


def tables(module):
    variables = "".join(p.read_text() for p in sorted(module.glob("*.tf")))
    rows = ["## Inputs", "", "| Name | Description | Type | Default | Required |", "|---|---|---|---|:---:|"]
    for name, body in blocks(variables, "variable"):
        default = attr(body, "default")
        typ = attr(body, "type")
        rows.append(
            f"| `{name}` | {cell(unquote(attr(body, 'description')))} | `{cell(typ)}` | "
            f"{'`' + cell(default) + '`' if default is not None else 'n/a'} | {'no' if default is not None else 'yes'} |"
        )
    rows += ["", "## Outputs", "", "| Name | Description |", "|---|---|"]
    for name, body in blocks(variables, "output"):
        rows.append(f"| `{name}` | {cell(unquote(attr(body, 'description')))} |")
    return "\n".join(rows)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "--check"
    stale = 0
    for module in sorted(p for p in ROOT.iterdir() if p.is_dir()):
        readme = module / "README.md"
        text = readme.read_text() if readme.exists() else ""
        if BEGIN not in text or END not in text:
            print(f"    {readme}: no {BEGIN} ... {END} markers")
            stale = 1
            continue
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        new = f"{head}{BEGIN}\n{tables(module)}\n{END}{tail}"
        if new != text:
            if mode == "--write":
                readme.write_text(new)
                print(f"    updated {readme.relative_to(ROOT.parents[1])}")
            else:
                print(f"    {readme.relative_to(ROOT.parents[1])}: inputs/outputs tables are stale "
                      f"(run python3 tests/infra/module_docs.py --write)")
                stale = 1
    return stale


if __name__ == "__main__":
    sys.exit(main())
