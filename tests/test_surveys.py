"""The `survey:` block of campaign files (engine/surveys.py): parsed, located errors, answers."""

from __future__ import annotations

import pytest

from engine.campaigns import load_campaign
from engine.surveys import Question, Survey, read_answers
from engine.workspace import open_workspace

NOW = ("--now", "2026-11-01")
HEAD = "subject: Hi\nsegment: garden_fans\ntemplate: spring.mjml\n"


def test_the_example_follow_up_survey(example_shop) -> None:
    survey = load_campaign(open_workspace(example_shop.root, environ={}), "follow_up").survey
    assert survey == Survey("How did your order go?", (
        Question("found_us", "How did you find us?", "choice", True, choices=(
            "Search engine", "A friend", "Social media", "An advertisement", "Other")),
        Question("buying", "How did buying go?", "choice", True, choices=(
            "Smoothly", "A few hiccups", "It was hard work")),
        Question("simple", "How simple was it, from 1 (not at all) to 5 (very)?", "scale", True,
                 low=1, high=5),
        Question("recommend", "How likely are you to recommend us to a friend?", "scale", True,
                 low=0, high=10, nps=True),
        Question("comment", "Anything else you would like to tell us?", "text", False,
                 max_length=500)))


def test_survey_mistakes_are_located(example_shop) -> None:
    example_shop.write("campaigns/bad.yaml", HEAD + """\
survey:
  titel: Hi
  questions:
    - key: Found
      ask: How?
      choice: [A]
    - key: nps
      ask: Recommend?
      scale: [1, 5]
      nps: true
    - key: long
      ask: More?
      text: {max_len: 3}
    - key: both
      ask: Which?
      choice: [a, b]
      scale: [0, 10]
      requird: true
    - key: many
      ask: Scale?
      scale: [0, 20]
      required: maybe
""")
    result = example_shop.run("check", "bad", *NOW)
    assert result.exit_code == 1
    path = example_shop.root / "campaigns" / "bad.yaml"
    assert [line.removeprefix(f"{path}:") for line in result.output.splitlines()
            if line.startswith(str(path))] == [
        "5:3: error: unknown survey option 'titel' (did you mean 'title'?); a survey takes "
        "title, questions",
        "7:12: error: question 'key' must be a lower-case name ([a-z][a-z0-9_]*, at most 40 "
        "characters), found 'Found'",
        "9:15: error: 'choice' must be a list of 2 to 10 different texts (at most 200 "
        "characters each), found a list",
        "13:12: error: 'nps: true' needs 'scale: [0, 10]' (the Net Promoter Score is asked 0 "
        "to 10)",
        "16:14: error: unknown text option 'max_len' (did you mean 'max_length'?); write it as "
        "{max_length: 500}",
        "17:7: error: a question takes exactly one of choice, scale, text, found choice, scale",
        "21:7: error: unknown question option 'requird' (did you mean 'required'?); a question "
        "takes key, ask, choice, scale, text, nps, required",
        "24:14: error: 'scale' must be [lowest, highest], whole numbers at most 10 apart such as "
        "[0, 10] or [1, 5], found a list",
        "25:17: error: 'required' must be true or false, found 'maybe'",
    ]


@pytest.mark.parametrize(("survey", "message"), [
    ("survey: yes\n", "4:9: error: 'survey' takes title: ... and questions: (a list of 1 to 5 "
                      "questions), found 'yes'"),
    ("survey:\n  questions: []\n", "5:14: error: survey 'questions' must be a list of 1 to 5 "
     "questions such as {key: recommend, ask: How likely are you to recommend us?, scale: "
     "[0, 10], nps: true}, found an empty list"),
    ("survey:\n  questions:\n    - {key: a, ask: A, text: }\n    - {key: a, ask: B, text: }\n",
     "7:13: error: question key 'a' is used twice; give each question its own key"),
    ("survey:\n  questions:\n    - {key: a, ask: A, text: {max_length: 2001}}\n",
     "6:43: error: 'max_length' must be a whole number from 1 to 2000, found 2001 (int)"),
])
def test_more_survey_mistakes(example_shop, survey: str, message: str) -> None:
    example_shop.write("campaigns/bad.yaml", HEAD + survey)
    result = example_shop.run("check", "bad", *NOW)
    assert result.exit_code == 1
    assert f"{example_shop.root / 'campaigns' / 'bad.yaml'}:{message}\n" in result.output


def test_answers_required_by_kind_unless_said_otherwise() -> None:
    survey = Survey("", (
        Question("pick", "Pick", "choice", False, choices=("a", "b")),
        Question("rate", "Rate", "scale", True, low=1, high=5),
        Question("say", "Say", "text", True, max_length=5)))
    assert read_answers(survey, {"rate": ["5"], "say": ["hello"]}) == (
        {"rate": 5, "say": "hello"}, {})
    assert read_answers(survey, {"pick": ["b"], "rate": [" 1 "], "say": ["a\r\nb"]}) == (
        {"pick": "b", "rate": 1, "say": "a\nb"}, {})
    assert read_answers(survey, {"say": ["  "]}) == ({}, {
        "rate": "Please answer this question.", "say": "Please answer this question."})
