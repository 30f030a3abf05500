"""The markdown tables the reports write, as HTML."""

from interp.reports.html import md_table, md_to_html


def test_md_to_html_escapes_cells_and_renders_a_bold_cell_in_bold():
    out = md_to_html(md_table(["cell", "transfers"], [["x<y", "**yes**"], ["a", "no"]]))
    assert "<td><b>yes</b></td>" in out and "**" not in out
    assert "<td>x&lt;y</td>" in out and "<td>no</td>" in out
