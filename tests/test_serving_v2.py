"""The V2 REST client (pytest_hwperf/serving/v2.py) against a fake server, and its
encoding and decoding on their own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _fake_v2 import DROP, HANG, FakeV2, Raw, fake_v2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_hwperf.serving import v2
from pytest_hwperf.serving.v2 import (
    RequestError,
    RequestTimeout,
    V2Client,
    decode_response,
    encode_request,
)

NUMERIC = [
    "bool",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
NAMES = st.text(min_size=1, max_size=12)


@pytest.fixture
def fake() -> Iterator[FakeV2]:
    with fake_v2() as server:
        yield server


def client_of(fake: FakeV2, timeout_s: float = 5.0, **kwargs: Any) -> V2Client:
    return V2Client(fake.host, fake.port, "tiny", timeout_s=timeout_s, **kwargs)


def echoed(body: bytes) -> bytes:
    """The response a server echoing its inputs would give, without HTTP."""
    return json.dumps({"outputs": json.loads(body)["inputs"]}).encode()


def numeric_arrays() -> st.SearchStrategy[np.ndarray]:
    def of(dtype: str) -> st.SearchStrategy[np.ndarray]:
        elements = (
            hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=False)
            if dtype.startswith("float")
            else None
        )
        return hnp.arrays(np.dtype(dtype), SHAPES, elements=elements)

    return st.sampled_from(NUMERIC).flatmap(of)


def text_arrays() -> st.SearchStrategy[np.ndarray]:
    texts = st.text(max_size=6)
    return SHAPES.flatmap(
        lambda shape: st.lists(
            texts, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))
        ).map(lambda items: np.array(items, dtype=object).reshape(shape))
    )


def same(sent: np.ndarray, got: np.ndarray) -> None:
    assert got.shape == sent.shape
    if sent.dtype.kind in "OUS":
        assert got.dtype == object
        assert got.tolist() == sent.tolist()
    else:
        assert got.dtype == sent.dtype
        np.testing.assert_array_equal(got, sent)


# --- encoding and decoding ----------------------------------------------------------


@given(array=numeric_arrays() | text_arrays())
def test_one_array_round_trips(array: np.ndarray) -> None:
    body = encode_request(array)
    (tensor,) = json.loads(body)["inputs"]
    assert tensor["name"] == "input-0"
    assert tensor["shape"] == list(array.shape)
    decoded = decode_response(echoed(body))
    assert isinstance(decoded, np.ndarray)
    same(array, decoded)


@given(inputs=st.dictionaries(NAMES, numeric_arrays() | text_arrays(), min_size=2, max_size=4))
def test_named_arrays_round_trip(inputs: dict[str, np.ndarray]) -> None:
    decoded = decode_response(echoed(encode_request(inputs)))
    assert isinstance(decoded, dict)
    assert list(decoded) == list(inputs)
    for name, array in inputs.items():
        same(array, decoded[name])


def test_sequence_names_and_datatypes() -> None:
    body = encode_request([np.zeros((2, 3), np.float32), np.arange(4, dtype=np.int64)])
    tensors = json.loads(body)["inputs"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in tensors] == [
        ("input-0", "FP32", [2, 3]),
        ("input-1", "INT64", [4]),
    ]


def test_big_endian_and_strided_arrays_are_sent_as_values() -> None:
    array = np.arange(12, dtype=">f8").reshape(3, 4)[:, ::2]
    same(array.astype(np.float64), decode_response(echoed(encode_request(array))))  # type: ignore[arg-type]


def test_bytes_are_sent_as_text() -> None:
    body = encode_request(np.array([b"ab", b"c"]))
    assert json.loads(body)["inputs"][0] == {
        "name": "input-0",
        "shape": [2],
        "datatype": "BYTES",
        "data": ["ab", "c"],
    }


def test_torch_tensors_are_sent_as_arrays() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    tensor = torch.ones(2, 3, requires_grad=True)
    (tensor_json,) = json.loads(encode_request(tensor * 2))["inputs"]
    assert tensor_json["datatype"] == "FP32"
    assert tensor_json["data"] == [2.0] * 6


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ({}, "no inputs"),
        ([], "no inputs"),
        ({"": np.zeros(1)}, "non-empty strings"),
        ({1: np.zeros(1)}, "non-empty strings"),
        (np.array([1.0, np.nan]), "NaN or infinity"),
        (np.array([np.inf], np.float32), "NaN or infinity"),
        (np.zeros(2, np.complex64), "no V2 datatype"),
        (np.array([b"\xff"]), "not UTF-8"),
        (np.array([1, "a"], dtype=object), "str or bytes"),
    ],
)
def test_inputs_json_cannot_carry_are_refused(inputs: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        encode_request(inputs)
    assert "\n" not in str(caught.value)


def test_nested_data_and_null_for_nan_are_accepted() -> None:
    body = json.dumps(
        {
            "outputs": [
                {"name": "y", "shape": [2, 2], "datatype": "FP32", "data": [[1, None], [3, 4.5]]}
            ]
        }
    ).encode()
    got = decode_response(body)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([[1, np.nan], [3, 4.5]], np.float32))


def test_nested_bytes_keep_row_major_order() -> None:
    data = [["a", "b"], ["c", "d"]]
    body = json.dumps(
        {"outputs": [{"name": "s", "shape": [2, 2], "datatype": "BYTES", "data": data}]}
    ).encode()
    got = decode_response(body)
    assert isinstance(got, np.ndarray)
    assert got.tolist() == data


def output(**fields: Any) -> bytes:
    tensor = {"name": "y", "shape": [2], "datatype": "INT32", "data": [1, 2], **fields}
    return json.dumps({"outputs": [tensor]}).encode()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "not JSON"),
        (b"<html>oops</html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"outputs": {}}', "no 'outputs' list"),
        (b'{"outputs": [1]}', "not an object"),
        (b'{"outputs": [{"shape": [1]}]}', "has no name"),
        (output(shape=[3]), "2 values for shape [3] (3 expected)"),
        (output(shape=[-2]), "invalid shape"),
        (output(shape="2"), "invalid shape"),
        (output(shape=[0, 2**64 - 1], data=[]), "invalid shape"),
        (output(shape=[True, 2]), "invalid shape"),
        (output(datatype="FP8"), "unknown datatype"),
        (output(data="12"), "no 'data' list"),
        (output(data=[1.5, 2]), "do not match datatype INT32"),
        (output(data=[1, 2**40]), "do not match datatype INT32"),
        (output(data=["1", "2"]), "do not match datatype INT32"),
        (output(data=[[1], [2, 3]]), "do not match datatype INT32"),
        (output(datatype="BOOL", data=[1, 0]), "do not match datatype BOOL"),
        (output(datatype="FP32", data=[1, "x"]), "do not match datatype FP32"),
        (output(datatype="BYTES", data=["a", 1]), "do not match datatype BYTES"),
        (
            json.dumps({"outputs": [json.loads(output())["outputs"][0]] * 2}).encode(),
            "appears twice",
        ),
    ],
)
def test_malformed_responses_are_one_line_request_errors(body: bytes, says: str) -> None:
    with pytest.raises(RequestError) as caught:
        decode_response(body)
    assert says in str(caught.value)
    assert caught.value.status is None
    assert "\n" not in str(caught.value)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)
TENSORS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=3) | JSON_VALUES,
        "shape": st.lists(st.integers(-2, 3) | st.integers(), max_size=3) | JSON_VALUES,
        "datatype": st.sampled_from([*v2._DTYPES, "BYTES", "FP8"]) | JSON_VALUES,
        "data": JSON_VALUES,
    },
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=300)
    | st.builds(
        lambda outputs: json.dumps({"outputs": outputs}).encode(), st.lists(TENSORS, max_size=3)
    )
)
def test_hostile_responses_raise_only_request_error(body: bytes) -> None:
    try:
        decoded = decode_response(body)
    except RequestError as exc:
        message = str(exc)
        assert "\n" not in message
        return
    arrays = decoded.values() if isinstance(decoded, dict) else [decoded]
    assert all(isinstance(a, np.ndarray) for a in arrays)


def test_request_error_is_one_line() -> None:
    error = RequestError(500, "line one\nline two\r\n\tand " + "x" * 1000)
    assert str(error).startswith("HTTP 500: line one line two and x")
    assert "\n" not in str(error)
    assert len(str(error)) < 420


# --- the client against the fake server ---------------------------------------------


def test_infer_round_trip_over_one_keep_alive_connection(fake: FakeV2) -> None:
    batch = np.random.default_rng(0).standard_normal((32, 512)).astype(np.float32)
    with client_of(fake) as client:
        for _ in range(5):
            got = client.infer(batch)
            assert isinstance(got, np.ndarray)
            same(batch, got)
        assert client.get("/v2/health/ready") == 200
    assert fake.requests == 6
    assert fake.connections == 1
    assert fake.paths[0] == "/v2/models/tiny/infer"


def test_model_name_is_quoted_in_the_path(fake: FakeV2) -> None:
    with V2Client(fake.host, fake.port, "my model/v1", timeout_s=5) as client:
        client.infer(np.zeros(1))
    assert fake.paths == ["/v2/models/my%20model%2Fv1/infer"]


def test_error_answer_gives_status_and_message(fake: FakeV2) -> None:
    fake.behaviour = lambda n, body: (500, json.dumps({"error": "boom"}).encode())
    with client_of(fake) as client, pytest.raises(RequestError) as caught:
        client.infer(np.zeros(2))
    assert caught.value.status == 500
    assert str(caught.value) == "HTTP 500: boom"


def test_error_answer_without_json_gives_the_body_start(fake: FakeV2) -> None:
    fake.behaviour = lambda n, body: (422, b"<html>\n" + b"y" * 1000)
    with client_of(fake) as client, pytest.raises(RequestError) as caught:
        client.post_infer(b"{}")
    assert caught.value.status == 422
    assert str(caught.value).startswith("HTTP 422: <html> yyy")
    assert len(caught.value.message) <= 200


def test_client_is_usable_after_an_error_answer(fake: FakeV2) -> None:
    fake.behaviour = lambda n, body: (503, b'{"error": "busy"}') if n == 1 else None
    with client_of(fake) as client:
        with pytest.raises(RequestError, match="busy"):
            client.infer(np.ones(1))
        assert isinstance(client.infer(np.ones(1)), np.ndarray)
    assert fake.connections == 1


def test_hanging_server_times_out(fake: FakeV2) -> None:
    fake.behaviour = lambda n, body: HANG
    with client_of(fake, timeout_s=0.3) as client, pytest.raises(RequestTimeout) as caught:
        client.infer(np.ones(1))
    assert caught.value.status is None
    assert "no response within 0.3 s" in str(caught.value)
    assert fake.requests == 1  # a timed-out request is not sent again


def test_refused_connection_is_a_request_error() -> None:
    with fake_v2() as gone:
        host, port = gone.host, gone.port
    with V2Client(host, port, "tiny", timeout_s=2) as client, pytest.raises(RequestError) as caught:
        client.get("/v2/health/ready")
    assert caught.value.status is None
    assert str(caught.value) == f"cannot connect to {host}:{port}: connection refused"


def test_dropped_request_on_a_fresh_connection_is_not_sent_again(fake: FakeV2) -> None:
    fake.behaviour = lambda n, body: DROP
    with client_of(fake) as client, pytest.raises(RequestError) as caught:
        client.infer(np.ones(1))
    assert caught.value.status is None
    assert "closed the connection without answering" in str(caught.value)
    assert fake.requests == 1


def test_dropped_reused_connection_is_replaced_once(fake: FakeV2) -> None:
    fake.behaviour = lambda n, body: DROP if n == 2 else None
    with client_of(fake) as client:
        client.infer(np.ones(1))
        assert isinstance(client.infer(np.ones(1)), np.ndarray)
    assert fake.requests == 3  # the dropped one, then once more on a fresh connection
    assert fake.connections == 2


def test_dropped_reused_connection_is_retried_only_once(fake: FakeV2) -> None:
    fake.behaviour = lambda n, body: DROP if n >= 2 else None
    with client_of(fake) as client:
        client.infer(np.ones(1))
        with pytest.raises(RequestError, match="without answering"):
            client.infer(np.ones(1))
    assert fake.requests == 3


def test_partly_answered_request_on_a_reused_connection_is_not_sent_again(
    fake: FakeV2,
) -> None:
    short = Raw(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"outp')
    fake.behaviour = lambda n, body: short if n == 2 else None
    with client_of(fake) as client:
        client.infer(np.ones(1))
        with pytest.raises(RequestError, match="in the middle of its answer"):
            client.infer(np.ones(1))
    assert fake.requests == 2


def test_idle_connection_closed_by_the_server_is_reopened(fake: FakeV2) -> None:
    fake.close_after_answer = True  # as uvicorn does to an idle keep-alive connection
    with client_of(fake) as client:
        for _ in range(4):
            assert isinstance(client.infer(np.ones(1)), np.ndarray)
    assert fake.requests == 4
    assert fake.connections == 4


@pytest.mark.parametrize(
    "raw",
    [
        Raw(b"garbage\r\n\r\n"),
        Raw(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"outp'),
        Raw(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}"),
        Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nnotjson"),
    ],
    ids=["not-http", "short-body", "bad-length", "bad-chunk", "not-json"],
)
def test_garbage_answers_are_request_errors(fake: FakeV2, raw: Raw) -> None:
    fake.behaviour = lambda n, body: raw
    with client_of(fake, timeout_s=2) as client, pytest.raises(RequestError) as caught:
        client.infer(np.ones(1))
    assert "\n" not in str(caught.value)


def test_declared_huge_body_is_refused_unread(fake: FakeV2) -> None:
    fake.behaviour = lambda n, body: Raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n{"
    )
    with client_of(fake, timeout_s=2) as client, pytest.raises(RequestError, match="over the cap"):
        client.infer(np.ones(1))


def test_undeclared_huge_body_is_cut_at_the_cap(fake: FakeV2) -> None:
    fake.behaviour = lambda n, body: Raw(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000
    )
    client = client_of(fake, timeout_s=2, max_body_bytes=1000)
    with client, pytest.raises(RequestError, match="over the cap of 1000 bytes"):
        client.infer(np.ones(1))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=200))
def test_arbitrary_bodies_over_http_raise_only_request_error(fake: FakeV2, body: bytes) -> None:
    fake.behaviour = lambda n, _: (200, body)
    with client_of(fake, timeout_s=2) as client:
        try:
            client.infer(np.ones(1))
        except RequestError as exc:
            message = str(exc)
            assert "\n" not in message
