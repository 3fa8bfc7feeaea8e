"""The lean client's SigV4 signatures: AWS's own worked example, and botocore's signer
on the requests ingest actually makes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from shared.adapters.s3_lean import SigV4Signer
from shared.clock import fixed_clock


def test_matches_the_aws_documentation_example() -> None:
    # "Example: GET Object" of the S3 SigV4 header-based authentication documentation.
    signer = SigV4Signer(
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        clock=fixed_clock(datetime(2013, 5, 24, tzinfo=UTC)),
    )
    headers = signer.sign(
        "GET",
        "/test.txt",
        {"host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9"},
        hashlib.sha256(b"").hexdigest(),
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_matches_botocore_on_a_conditional_put_of_an_escaped_key() -> None:
    body = b'{"aggregate":{}}'
    path = "/usage-aggregates/v1/orgs/ws%3A1/days/2026-01-01/head.json"
    request = AWSRequest(
        method="PUT",
        url=f"http://127.0.0.1:8333{path}",
        data=body,
        headers={"if-match": '"abc"', "content-type": "application/json"},
    )
    S3SigV4Auth(Credentials("usage-dev", "secret/key+"), "s3", "eu-west-1").add_auth(request)
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = SigV4Signer("usage-dev", "secret/key+", "eu-west-1", clock=fixed_clock(when)).sign(
        "PUT",
        path,
        {"host": "127.0.0.1:8333", "if-match": '"abc"', "content-type": "application/json"},
        hashlib.sha256(body).hexdigest(),
    )
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["x-amz-content-sha256"] == request.headers["X-Amz-Content-SHA256"]
