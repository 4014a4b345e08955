"""Templates under a budget: bombs are refused before they allocate, normal Jinja still works."""

from __future__ import annotations

import tracemalloc

import jinja2
import pytest

from daemon.outbox.sandbox import (
    BudgetExceeded,
    TemplateBudget,
    budgeted_environment,
    render_budgeted,
)

BOMBS = {
    "repetition": '{{ "a" * 10**8 }}',
    "list repetition": "{{ [0] * 10**8 }}",
    "range": "{% for i in range(10**9) %}x{% endfor %}",
    "nested loops": "{% for i in range(1000) %}{% for j in range(1000) %}"
                    "{% endfor %}{% endfor %}",
    "power": "{{ 2 ** (10**9) }}",
    "printf width": '{{ "%999999999d" % 1 }}',
    "format width": '{{ "{:>999999999}".format(1) }}',
    "center filter": '{{ "a"|center(10**9) }}',
    "ljust method": '{{ "a".ljust(10**9) }}',
    "replace filter": '{{ ("a" * 1000)|replace("a", "b" * 100000) }}',
    "replace method": '{{ ("a" * 1000).replace("a", "b" * 100000) }}',
    "join": '{{ ("x" * 1000)|join("y" * 100000) }}',
    "doubling with ~": '{% set ns = namespace(s="ab") %}{% for i in range(40) %}'
                       "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "doubling with +": '{% set ns = namespace(s="ab") %}{% for i in range(40) %}'
                       "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "recursive macro": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}"
                       "{% endmacro %}{{ f(40) }}",
    "output": "{% for i in range(1000) %}{{ 'x' * 5000 }}{% endfor %}",
}


@pytest.mark.parametrize("source", BOMBS.values(), ids=BOMBS.keys())
def test_a_bomb_is_refused_before_it_allocates(source: str):
    env = budgeted_environment(TemplateBudget(max_output_chars=1_000_000,
                                              max_loop_iterations=2_000, max_seconds=60))
    tracemalloc.start()
    try:
        with pytest.raises(BudgetExceeded):
            render_budgeted(env.from_string(source), {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # main took 1.2 GB for the repetition alone


def test_the_output_budget_is_on_top_of_the_merge_codes():
    env = budgeted_environment(TemplateBudget(max_output_chars=100))
    big = "m" * 5000
    assert render_budgeted(env.from_string("<p>{{ body }}</p>"), {"body": big}) == \
        f"<p>{big}</p>"
    with pytest.raises(BudgetExceeded):
        render_budgeted(env.from_string("{{ body }}{{ body }}"), {"body": big})


def test_loops_share_one_iteration_budget_per_render():
    env = budgeted_environment(TemplateBudget(max_loop_iterations=10))
    template = env.from_string("{% for i in items %}{{ i }}{% endfor %}")
    assert render_budgeted(template, {"items": range(10)}) == "0123456789"
    with pytest.raises(BudgetExceeded):
        render_budgeted(template, {"items": range(11)})
    twice = env.from_string("{% for i in items %}{% endfor %}{% for i in items %}{% endfor %}")
    with pytest.raises(BudgetExceeded):
        render_budgeted(twice, {"items": range(6)})


def test_ordinary_templates_render_as_jinja_renders_them():
    env = budgeted_environment(autoescape=True)
    source = ("{% for x in items %}{{ loop.index }}/{{ loop.length }}:{{ x ~ '!' }} "
              "{% endfor %}{{ name|upper|center(9) }}|{{ '%s-%02d' % ('a', 7) }}|"
              "{{ '{} {}'.format(1, 2) }}|{{ items|join(', ') }}|{{ 2 ** 10 }}|"
              "{{ ('ab' * 3)|replace('b', 'c') }}|{{ name ~ '<b>' }}")
    got = render_budgeted(env.from_string(source), {"items": ["a", "b"], "name": "ann"})
    assert got == ("1/2:a! 2/2:b!    ANN   |a-07|1 2|a, b|1024|acacac|ann&lt;b&gt;")


def test_lists_cannot_be_changed_in_place_and_lipsum_is_gone():
    env = budgeted_environment()
    with pytest.raises(jinja2.exceptions.SecurityError):
        render_budgeted(env.from_string("{% set l = [1] %}{{ l.extend(l) }}"), {})
    with pytest.raises(jinja2.UndefinedError):
        render_budgeted(env.from_string("{{ lipsum(10**6) }}"), {})
