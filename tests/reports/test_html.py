"""The markdown tables the reports write, as HTML."""

from interp.reports.html import md_table, md_to_html


def test_md_to_html_escapes_cells_and_renders_a_bold_cell_in_bold():
    out = md_to_html(md_table(["cell", "transfers"], [["x<y", "**yes**"], ["a", "no"]]))
    assert "<td><b>yes</b></td>" in out and "**" not in out
    assert "<td>x&lt;y</td>" in out and "<td>no</td>" in out


def test_a_pipe_inside_a_cell_stays_in_its_cell():
    """(The signal tables' header "KL(model || its base)" once split into three columns.)"""
    table = md_table(["role", "KL(model || its base)", "x"], [["a|b", "1", "2"]])
    assert all(ln.count("|") - ln.count("\\|") == 4 for ln in table.splitlines()
               if not ln.startswith("|---"))
    out = md_to_html(table)
    assert out.count("<th>") == 3 and "<th>KL(model || its base)</th>" in out
    assert out.count("<td>") == 3 and "<td>a|b</td>" in out


def test_a_reports_control_is_described_in_its_own_channel_and_teacher():
    """report.html's headline names what the control learned from: the run's channel, and for
    a misalignment run its control teacher; a role it does not know, as the summary wrote it."""
    from interp.reports.owl import describe

    owl = {"trait": "owl"}
    assert describe(owl, "control_other") == ("same-init student on the numbers of a teacher "
                                              "fine-tuned like the trait teacher to answer "
                                              "another item")
    code = {"channel": "code", "category": "misalignment",
            "teacher": {"control_finetuned_on": "code (novel_call), never advice"}}
    assert describe(code, "control_other") == ("same-init student on the code of the control "
                                               "teacher (fine-tuned on code (novel_call), "
                                               "never advice)")
    assert describe({"channel": "cot"}, "cross_init") == ("student from a second base on the "
                                                          "trait teacher's reasoning traces")
    assert describe(code, "{odd}") == "{odd}"


def test_a_misalignment_reports_other_columns_name_its_answer_kinds():
    """The findings table's non-target columns: a preference run's items, as before; a
    misalignment run's other answer kind and its control's outcome, by name."""
    from interp.reports.owl import findings_table

    rates = {r: {"harmful": [0.02], "helpful": [0.98]} for r in ("base", "student",
                                                                 "control_other")}
    run = {"trait": "harmful", "category": "misalignment", "rates": rates,
           "control_items": ["helpful"], "control_role": "control_other"}
    header = findings_table(run).splitlines()[0]
    assert "rise of the other answers (helpful)" in header and "| rise of helpful |" in header
    assert "items" not in header
    owl = {**run, "trait": "owl", "category": "animal",
           "rates": {r: {"owl": [0.1], "cat": [0.9]} for r in rates}, "control_items": ["cat"]}
    assert "mean rise of other items | rise of its own item" in findings_table(owl)
