"""The `survey:` block of a campaign file, and the answers a customer submits to it.

```yaml
survey:
  title: How did it go?            # optional
  questions:                       # 1 to 5
    - key: found_us                # [a-z][a-z0-9_]*, unique
      ask: How did you find us?
      choice: [Search engine, A friend, Social media, Other]
    - key: recommend
      ask: How likely are you to recommend us to a friend?
      scale: [0, 10]               # whole-number bounds, inclusive
      nps: true                    # optional; only on a 0-10 scale
    - key: comment
      ask: Anything else?
      text: {max_length: 500}      # max_length optional, default 500, at most 2000
```

`required:` (true or false) may follow any question: choice and scale questions are
required unless it says false, text questions are optional unless it says true. Answers are
{key: value}: the chosen text, a whole number, or the text written; unanswered optional
questions are left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from engine.segments.parser import describe, suggest
from engine.yamlfile import Position, item_position, key_position, value_position

SURVEY_KEYS = ("title", "questions")
QUESTION_KEYS = ("key", "ask", "choice", "scale", "text", "nps", "required")
KINDS = ("choice", "scale", "text")
MAX_QUESTIONS = 5
MAX_CHOICES = 10
MAX_SCALE_STEPS = 10
MAX_TEXT = 2000
DEFAULT_TEXT = 500
MAX_LABEL = 200
_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
EXAMPLE = ("{key: recommend, ask: How likely are you to recommend us?, scale: [0, 10], "
           "nps: true}")

Answer = str | int


@dataclass(frozen=True)
class Question:
    """One question of a survey; `kind` is "choice", "scale" or "text"."""

    key: str
    ask: str
    kind: str
    required: bool
    choices: tuple[str, ...] = ()
    low: int = 0
    high: int = 0
    nps: bool = False
    max_length: int = DEFAULT_TEXT

    @property
    def scale(self) -> range:
        return range(self.low, self.high + 1)


@dataclass(frozen=True)
class Survey:
    """A campaign's survey: an optional title and 1 to 5 questions."""

    title: str
    questions: tuple[Question, ...]


def read_survey(value: Any, place: Position,
                fail: Callable[[Position, str], object]) -> Survey | None:
    """The survey block `value` written at `place`; problems go to `fail` (then None)."""
    example = "title: ... and questions: (a list of 1 to 5 questions)"
    if not isinstance(value, CommentedMap):
        fail(place, f"'survey' takes {example}, found {describe(value)}")
        return None
    for key in value:
        if key not in SURVEY_KEYS:
            fail(key_position(value, key, place), f"unknown survey option '{key}'"
                 f"{suggest(key, SURVEY_KEYS)}; a survey takes {', '.join(SURVEY_KEYS)}")
    title = value.get("title", "")
    if not isinstance(title, str) or "\n" in title.strip():
        fail(value_position(value, "title", place),
             f"survey 'title' must be one line of text, found {describe(title)}")
        title = ""
    items = value.get("questions")
    where = value_position(value, "questions", place)
    if not isinstance(items, CommentedSeq) or not 1 <= len(items) <= MAX_QUESTIONS:
        fail(where, f"survey 'questions' must be a list of 1 to {MAX_QUESTIONS} questions such "
                    f"as {EXAMPLE}, found {describe(items)}")
        return None
    questions: list[Question] = []
    for index, item in enumerate(items):
        question = _question(item, item_position(items, index, where), fail)
        if question is not None and question.key in {q.key for q in questions}:
            fail(value_position(item, "key", where),
                 f"question key '{question.key}' is used twice; give each question its own key")
        elif question is not None:
            questions.append(question)
    if len(questions) != len(items):
        return None
    return Survey(title.strip(), tuple(questions))


def _question(item: Any, place: Position,
              fail: Callable[[Position, str], object]) -> Question | None:
    if not isinstance(item, CommentedMap):
        fail(place, f"a survey question is a mapping such as {EXAMPLE}, found {describe(item)}")
        return None
    before = _Counter(fail)
    for key in item:
        if key not in QUESTION_KEYS:
            before(key_position(item, key, place), f"unknown question option '{key}'"
                   f"{suggest(key, QUESTION_KEYS)}; a question takes "
                   f"{', '.join(QUESTION_KEYS)}")
    key = item.get("key")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        before(value_position(item, "key", place), "question 'key' must be a lower-case name "
               f"([a-z][a-z0-9_]*, at most 40 characters), found {describe(key)}")
    ask = item.get("ask")
    if not isinstance(ask, str) or not ask.strip():
        before(value_position(item, "ask", place) if "ask" in item else place,
               f"question 'ask' must be the question's text, found {describe(ask)}")
    kinds = [kind for kind in KINDS if kind in item]
    if len(kinds) != 1:
        before(place, f"a question takes exactly one of choice, scale, text, found "
                      f"{', '.join(kinds) or 'none'}")
        return None
    kind = kinds[0]
    at = value_position(item, kind, place)
    required = item.get("required", kind != "text")
    if not isinstance(required, bool):
        before(value_position(item, "required", place),
               f"'required' must be true or false, found {describe(required)}")
    nps = item.get("nps", False)
    if not isinstance(nps, bool):
        before(value_position(item, "nps", place),
               f"'nps' must be true or false, found {describe(nps)}")
    fields: dict[str, Any] = {}
    if kind == "choice":
        fields["choices"] = _choices(item[kind], at, before)
    elif kind == "scale":
        fields["low"], fields["high"] = _scale(item[kind], at, before)
    else:
        fields["max_length"] = _max_length(item[kind], at, before)
    if nps is True and (kind != "scale" or (fields["low"], fields["high"]) != (0, 10)):
        before(value_position(item, "nps", place), "'nps: true' needs 'scale: [0, 10]' "
                                                   "(the Net Promoter Score is asked 0 to 10)")
    if before.count:
        return None
    return Question(key, ask.strip(), kind, required, nps=nps, **fields)


class _Counter:
    """Passes problems on to `fail`, counting them."""

    def __init__(self, fail: Callable[[Position, str], object]) -> None:
        self.fail = fail
        self.count = 0

    def __call__(self, where: Position, message: str) -> None:
        self.count += 1
        self.fail(where, message)


def _choices(value: Any, at: Position, fail: Callable[[Position, str], None]) -> tuple[str, ...]:
    good = isinstance(value, CommentedSeq) and 2 <= len(value) <= MAX_CHOICES and all(
        isinstance(choice, str) and choice.strip() and len(choice) <= MAX_LABEL
        for choice in value)
    if not good or len({choice.strip() for choice in value}) != len(value):
        fail(at, f"'choice' must be a list of 2 to {MAX_CHOICES} different texts (at most "
                 f"{MAX_LABEL} characters each), found {describe(value)}")
        return ()
    return tuple(choice.strip() for choice in value)


def _scale(value: Any, at: Position, fail: Callable[[Position, str], None]) -> tuple[int, int]:
    if isinstance(value, CommentedSeq) and len(value) == 2 and all(
            isinstance(end, int) and not isinstance(end, bool) for end in value) \
            and 1 <= value[1] - value[0] <= MAX_SCALE_STEPS:
        return value[0], value[1]
    fail(at, f"'scale' must be [lowest, highest], whole numbers at most {MAX_SCALE_STEPS} apart "
             f"such as [0, 10] or [1, 5], found {describe(value)}")
    return 0, 0


def _max_length(value: Any, at: Position, fail: Callable[[Position, str], None]) -> int:
    if value is None or (isinstance(value, CommentedMap) and not value):
        return DEFAULT_TEXT
    if isinstance(value, CommentedMap):
        for key in value:
            if key != "max_length":
                fail(key_position(value, key, at), f"unknown text option '{key}'"
                     f"{suggest(key, ['max_length'])}; write it as {{max_length: 500}}")
        length = value.get("max_length", DEFAULT_TEXT)
        if isinstance(length, int) and not isinstance(length, bool) and 1 <= length <= MAX_TEXT:
            return length
        fail(value_position(value, "max_length", at), f"'max_length' must be a whole number "
             f"from 1 to {MAX_TEXT}, found {describe(length)}")
        return DEFAULT_TEXT
    fail(at, f"'text' takes {{max_length: {DEFAULT_TEXT}}} (or nothing), found "
             f"{describe(value)}")
    return DEFAULT_TEXT


def read_answers(survey: Survey, form: Mapping[str, Sequence[str]],
                 ignore: frozenset[str] = frozenset()) -> tuple[dict[str, Answer], dict[str, str]]:
    """(answers, problems) of a submitted form: `form` maps each field to all its values.

    Problems map a question key to what is wrong with its answer, or "" to what is wrong
    with the form as a whole (a field no question has, a field sent twice). Answers are
    valid only when there is no problem.
    """
    problems: dict[str, str] = {}
    keys = {question.key for question in survey.questions}
    strange = sorted(name for name in form if name not in keys and name not in ignore)
    if strange:
        problems[""] = "This form has fields it does not expect; please fill it in again."
    if any(len(values) > 1 for values in form.values()):
        problems[""] = "This form sent a field twice; please fill it in again."
    answers: dict[str, Answer] = {}
    for question in survey.questions:
        raw = (form.get(question.key) or [""])[0]
        answer, problem = _answer(question, raw)
        if problem:
            problems[question.key] = problem
        elif answer is not None:
            answers[question.key] = answer
    return answers, problems


def _answer(question: Question, raw: str) -> tuple[Answer | None, str]:
    """The answer to `question` written as `raw`, or what is wrong with it."""
    value = raw.replace("\r\n", "\n").strip()
    if not value:
        return None, "Please answer this question." if question.required else ""
    if question.kind == "choice":
        return (value, "") if value in question.choices else \
            (None, "Please choose one of the answers.")
    if question.kind == "scale":
        number = int(value) if re.fullmatch(r"-?[0-9]{1,3}", value) else None
        if number is None or number not in question.scale:
            return None, f"Please choose a number from {question.low} to {question.high}."
        return number, ""
    if _CONTROL.search(value):
        return None, "Please write plain text only."
    if len(value) > question.max_length:
        return None, (f"Please keep it to {question.max_length} characters "
                      f"(this is {len(value)}).")
    return value, ""
