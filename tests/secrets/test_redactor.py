"""The one redactor (`compliance_loadtest.redact`) on what secrets look like where they travel: query
parameters, headers, JSON and form bodies, URLs with a password, also inside a JSON string that quotes
a whole request; and what it must leave alone. A failure keeps its class and loses its secret."""

from __future__ import annotations

import pytest

from compliance_loadtest.redact import REDACTED, is_secret_key, redact, redact_exception, redact_text

R = REDACTED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # query strings: every secret-looking parameter, whatever else the URL holds
        ("/search?q=audit&token=t1&page=2", f"/search?q=audit&token={R}&page=2"),
        ("/x?access_token=a&refresh_token=r&id_token=i&csrftoken=c",
         f"/x?access_token={R}&refresh_token={R}&id_token={R}&csrftoken={R}"),
        ("/x?api_key=k&apikey=k&key=k&x-api-key=k", f"/x?api_key={R}&apikey={R}&key={R}&x-api-key={R}"),
        ("/x?secret=s&client_secret=s&password=p&passwd=p&pwd=p",
         f"/x?secret={R}&client_secret={R}&password={R}&passwd={R}&pwd={R}"),
        ("/x?signature=s&sig=s&X-Amz-Signature=s", f"/x?signature={R}&sig={R}&X-Amz-Signature={R}"),
        ("/x?session=s&sessionid=s&session_id=s&PHPSESSID=s&jsessionid=s",
         f"/x?session={R}&sessionid={R}&session_id={R}&PHPSESSID={R}&jsessionid={R}"),
        ("/x?auth=a&auth_token=a&authkey=a&auth_code=a",
         f"/x?auth={R}&auth_token={R}&authkey={R}&auth_code={R}"),
        # headers, as lines and as a mapping's repr
        ("Authorization: Basic dXNlcjpwdw==", f"Authorization: Basic {R}"),
        ("Proxy-Authorization: Bearer abc.def", f"Proxy-Authorization: Bearer {R}"),
        ("authorization: s3cr3t", f"authorization: {R}"),
        ("Cookie: session=abc; theme=dark", f"Cookie: {R}"),
        ("Set-Cookie: sid=abc; Path=/; HttpOnly", f"Set-Cookie: {R}"),
        ("{'X-Api-Key': 'k', 'X-Auth-Token': 't', 'Accept': 'application/json'}",
         f"{{'X-Api-Key': '{R}', 'X-Auth-Token': '{R}', 'Accept': 'application/json'}}"),
        # bodies: JSON, a form, and a request quoted whole inside a JSON string
        ('{"email": "a@b.c", "password": "p w"}', f'{{"email": "a@b.c", "password": "{R}"}}'),
        ("grant_type=password&password=p&username=u", f"grant_type=password&password={R}&username=u"),
        ('{"detail": "POST /t\\nAuthorization: Basic eHg=\\nCookie: a=b\\n{\\"password\\": \\"p\\"}"}',
         f'{{"detail": "POST /t\\nAuthorization: Basic {R}\\nCookie: {R}\\n{{\\"password\\": \\"{R}\\"}}"}}'),
        # URLs with a password, Bearer anywhere
        ("http://user:pw@127.0.0.1:8000/x", f"http://user:{R}@127.0.0.1:8000/x"),
        ("sent Bearer eyJ.abc.def to /x", f"sent Bearer {R} to /x"),
    ],
)  # fmt: skip
def test_secrets_where_they_travel_are_redacted(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # redacting twice changes nothing more


@pytest.mark.parametrize(
    "text",
    [
        "/api/evidence/[id]",
        "/x?author=bob&keyword=soc2&monkey=1&max_tokens=100&tokens=5&token_type=bearer",
        "LLM sse time to first token",
        "KeyError: 'title'",
        "missing key 'auth.login' in other-backend.yaml",
        "expected 201, got 422 (body.title: Field required)",
        "Basic checks passed",
        "JOB report ready: soc2",
    ],
)
def test_what_is_not_a_secret_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "key",
    ["token", "access_token", "X-Auth-Token", "api_key", "X-Api-Key", "key", "secret", "password",
     "signature", "sig", "session", "session_id", "auth", "web_auth", "authorization", "Cookie",
     "Set-Cookie"],
)  # fmt: skip
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)
    assert redact({key: "v"}) == {key: R}


@pytest.mark.parametrize(
    "key", ["tokens", "max_tokens", "token_type", "author", "keyword", "ttft_ms", "tags"]
)
def test_keys_that_only_look_like_secrets(key: str) -> None:
    assert not is_secret_key(key)


def test_a_failure_keeps_its_class_and_loses_its_secret() -> None:
    class BadStatus(ConnectionError):
        def __init__(self, url: str, *, code: int) -> None:
            super().__init__(url, code)

    original = BadStatus("http://127.0.0.1:8000/x?token=t1", code=400)
    stand_in = redact_exception(original)
    assert isinstance(stand_in, BadStatus) and type(stand_in).__name__ == "BadStatus"
    assert "t1" not in str(stand_in) and "t1" not in repr(stand_in)
    assert repr(stand_in) == f"BadStatus('http://127.0.0.1:8000/x?token={R}', 400)"
    assert stand_in.__cause__ is None and stand_in.__context__ is None
    clean = ValueError("expected 200, got 500")
    assert redact_exception(clean) is clean  # nothing to hide: the very same object
    assert redact_exception("Authorization: Basic eHg=") == f"Authorization: Basic {R}"
