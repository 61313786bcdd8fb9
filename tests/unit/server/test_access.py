"""Who may connect: the origin allowlist against hostile look-alikes of an allowed origin, the
Host allowlist of a loopback server, the token and the bearer header. Pure functions."""

from __future__ import annotations

import pytest

from voxlive.server.access import bearer, origin_ok, token_ok, trusted_hosts

APP = ("https://app.example.com",)


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com",
        "https://app.example.com/",  # a trailing slash is the same origin
    ],
)
def test_a_listed_origin_is_allowed(origin: str) -> None:
    assert origin_ok(origin, "voxlive.internal", APP)


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com.evil.com",  # the allowed name as a prefix
        "https://evil-app.example.com",  # as a suffix
        "https://evilapp.example.com",
        "https://app.example.co",  # one character short
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "https://app.example.com@evil.com",  # userinfo trick
        "https://app.example.com/../evil",
        "https://localhost:5173",  # localhost is not implied once a list is given
        "null",  # sandboxed iframes and file:// pages
    ],
)
def test_look_alikes_of_a_listed_origin_are_refused(origin: str) -> None:
    assert not origin_ok(origin, "app.example.com", APP)


def test_a_star_in_the_list_allows_any_origin_and_no_origin_is_always_allowed() -> None:
    assert origin_ok("https://anything.example", None, ("https://a.example", "*"))
    assert origin_ok(None, None, APP)
    assert origin_ok("", "example.com", APP)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://example.com:8000", "example.com:8000"),
        ("http://EXAMPLE.com:8000", "example.COM:8000"),  # host names are case-insensitive
        ("http://localhost:5173", "example.com"),
        ("http://127.0.0.1:3000", "example.com"),
        ("http://[::1]:3000", "example.com"),
        ("http://dev.localhost:5173", "example.com"),  # *.localhost is loopback by definition
    ],
)
def test_without_a_list_the_same_host_or_localhost_is_allowed(origin: str, host: str) -> None:
    assert origin_ok(origin, host, ())


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://example.com:8000.evil.com", "example.com:8000"),
        ("http://evil.com", "example.com"),
        ("http://example.com", "example.com:8000"),  # same name, another port
        ("http://example.com:8000", "example.com"),
        ("http://localhost.evil.com", "example.com"),  # localhost as a prefix only
        ("http://evillocalhost", "example.com"),  # ends with "localhost" but not ".localhost"
        ("http://127.0.0.1.evil.com", "example.com"),
        ("http://example.com", None),  # no Host header: only localhost origins pass
        ("http://example.com", ""),
        ("null", "example.com"),
    ],
)
def test_without_a_list_look_alikes_are_refused(origin: str, host: str | None) -> None:
    assert not origin_ok(origin, host, ())


def test_a_loopback_server_answers_only_to_localhost_names() -> None:
    local = ["localhost", "*.localhost", "127.0.0.1", "::1"]
    assert trusted_hosts((), "127.0.0.1") == [*local, "127.0.0.1"]
    assert trusted_hosts((), "localhost") == [*local, "localhost"]
    assert trusted_hosts((), "::1") == [*local, "::1"]
    assert trusted_hosts((), "127.0.0.2") == [*local, "127.0.0.2"]
    assert trusted_hosts((), "0.0.0.0") == ["*"]
    assert trusted_hosts((), "10.127.0.1") == ["*"]  # "127." must be the start
    assert trusted_hosts(("voxlive.example",), "127.0.0.1") == ["voxlive.example"]


def test_the_token_must_match_exactly_when_one_is_set() -> None:
    assert token_ok("", None) and token_ok("", "anything")
    assert token_ok("s3cret", "s3cret")
    for given in (None, "", "s3cre", "s3crett", "S3CRET", " s3cret"):
        assert not token_ok("s3cret", given)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer s3cret", "s3cret"),
        ("bearer s3cret", "s3cret"),  # the scheme is case-insensitive
        ("BEARER  s3cret ", "s3cret"),
        ("Bearer ", None),
        ("Bearer", None),
        ("Basic s3cret", None),
        ("Bearers3cret", None),
        ("", None),
    ],
)
def test_a_bearer_header_gives_its_token(header: str, token: str | None) -> None:
    assert bearer({"authorization": header} if header else {}) == token


@pytest.mark.parametrize("listed", ["https://app.example.com/", "https://app.example.com//"])
def test_a_listed_origin_written_with_a_trailing_slash_still_matches(listed: str) -> None:
    assert origin_ok("https://app.example.com", "voxlive.internal", (listed,))


def test_an_origin_ending_in_x_is_compared_whole() -> None:
    # only slashes are trimmed: the origin's own last characters are part of it
    assert origin_ok("https://BOX", "voxlive.internal", ("https://BOX",))
    assert not origin_ok("https://BOX", "voxlive.internal", ("https://BO",))
