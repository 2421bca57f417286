"""The class report: pass rates from the gradebook's table, the mistakes the checks named with
their counts, flagged submissions, a chart; in Markdown and in HTML."""

from __future__ import annotations

import base64
import re

import pytest

from cbam.course.grading.class_report import summarize, to_html, to_markdown, write_summary
from cbam.course.grading.gradebook import gradebook, rows
from cbam.course.grading.report import ExerciseResult, Report

SIGMOIDS = ("✗ channel-attention: attention(x) is (N, C, 1, 1) and matches cbam.ChannelAttention "
            "(same weights) — a sigmoid on each branch, then summed: add the two MLP outputs "
            "first, then apply one sigmoid")
SIGMOIDS_AGAIN = SIGMOIDS.replace("attention(x) is (N, C, 1, 1) and matches cbam.Channel"
                                  "Attention (same weights)", "forward(x) returns x * "
                                  "attention(x), of the shape of x")
SHORTCUT = ("✗ channel-attention: ChannelAttention is cbam's own class cbam.ChannelAttention: "
            "write it yourself")


def report(name: str, **results: tuple[str, list[str]]) -> Report:
    exercises = [ExerciseResult(exercise.replace("_", "-"), status, "", lines)
                 for exercise, (status, lines) in results.items()]
    return Report(name, lesson="01", slug="channel_attention", exercises=exercises)


@pytest.fixture
def reports() -> list[Report]:
    right = ("passed", ["✓ channel-attention: ..."])
    return [
        report("alice.ipynb", shared_mlp=("passed", []), channel_attention=right),
        report("bob.ipynb", shared_mlp=("passed", []),
               channel_attention=("failed", [SIGMOIDS, SIGMOIDS_AGAIN])),
        report("carol.ipynb", shared_mlp=("not implemented", []),
               channel_attention=("failed", [SIGMOIDS])),
        report("dave.ipynb", shared_mlp=("passed", []), channel_attention=("failed", [SHORTCUT])),
        Report("eve.ipynb", error="not a notebook: the file is not JSON"),
    ]


def test_pass_rates_are_the_gradebooks(reports):
    summary = summarize(gradebook(reports))
    (lesson,) = summary.lessons
    attention = lesson.exercises["channel-attention"]
    _, table = rows(reports)
    assert attention.passed == sum(r["channel-attention"] or 0 for r in table) == 1
    assert (attention.graded, lesson.submissions) == (4, 4)
    assert lesson.exercises["shared-mlp"].passed == 3
    assert summary.ungradable == [("eve.ipynb", "not a notebook: the file is not JSON")]


def test_a_mistake_is_counted_once_per_submission_under_the_checks_words(reports):
    mistakes = summarize(gradebook(reports)).lessons[0].exercises["channel-attention"].mistakes
    named = ("a sigmoid on each branch, then summed: add the two MLP outputs first, then apply "
             "one sigmoid")
    assert mistakes[named] == 2  # bob's two lines say it twice: one submission
    assert summarize(gradebook(reports)).lessons[0].exercises["shared-mlp"].mistakes == {
        "not implemented": 1}


def test_shortcuts_are_flagged(reports):
    (flag,) = summarize(gradebook(reports)).lessons[0].flagged
    assert (flag.submission, flag.exercise) == ("dave.ipynb", "channel-attention")
    assert flag.why == ("refused as a shortcut: ChannelAttention is cbam's own class "
                        "cbam.ChannelAttention: write it yourself")


def test_suspicious_code_is_flagged_with_its_reason():
    flagged = report("mallory.ipynb", channel_attention=("suspicious", []))
    flagged.exercises[0].hint = "suspicious code, not run: touches the builtins"
    (flag,) = summarize(gradebook([flagged])).lessons[0].flagged
    assert flag.why == "suspicious code, not run: touches the builtins"


def test_markdown_and_html_list_rates_mistakes_flags_and_a_chart(reports, tmp_path):
    summary = summarize(gradebook(reports))
    markdown = to_markdown(summary)
    assert "| channel-attention | 1 of 4 | 25 % |" in markdown
    assert "- 2 × a sigmoid on each branch, then summed" in markdown
    assert "- dave.ipynb, channel-attention: refused as a shortcut" in markdown
    page = to_html(summary)
    assert '<span class="count">2 ×</span> a sigmoid on each branch' in page
    assert "cbam&#x27;s own class" in page  # escaped
    assert not re.search(r"(src|href)=\"https?:", page)  # nothing to fetch
    (chart,) = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert base64.b64decode(chart).startswith(b"\x89PNG")
    for suffix in (".md", ".html"):
        write_summary(gradebook(reports), tmp_path / f"class{suffix}")
        assert (tmp_path / f"class{suffix}").stat().st_size > 1000


def test_another_suffix_is_refused_naming_both(reports, tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.md or \.html, got 'class\.pdf'"):
        write_summary(gradebook(reports), tmp_path / "class.pdf")


def test_the_command_refuses_another_suffix(tmp_path, capsys):
    from cbam.course.grading.grader import main

    assert main([str(tmp_path), "--summary", str(tmp_path / "class.txt")]) == 2
    assert "--summary must end in .md or .html, got" in capsys.readouterr().err
