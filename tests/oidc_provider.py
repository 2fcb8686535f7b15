"""A local OpenID Connect provider for the tests, following the published protocol (and ProConnect's rules).

It serves discovery, JWKS, authorize (the user is chosen by the test: no login page), token, userinfo
(plain JSON or a signed JWT) and end-session (RP-Initiated Logout 1.0: the ID token as hint, a registered
return address), on a real port. Knobs let a test make it misbehave.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, Header, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

CLIENT_ID = "socle-test"
CLIENT_SECRET = "secret-du-client-de-test"


@dataclass
class Provider:
    base_url: str = ""
    user: dict[str, Any] = field(default_factory=dict)  # the claims of whoever "signs in" next
    signed_userinfo: bool = False
    proconnect_rules: bool = False  # state/nonce ≥ 32 characters, no unknown authorize parameter
    end_session: bool = True  # announce an end_session_endpoint in the discovery document
    post_logout_redirect_uris: list[str] = field(default_factory=list)  # registered for the client
    # Misbehaviours a test can switch on.
    sign_with_other_key: bool = False
    sign_userinfo_with_other_key: bool = False  # the ID token stays genuine: only the userinfo is forged
    wrong_nonce: bool = False
    userinfo_other_subject: bool = False
    code_lifetime: float = 30.0
    key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    other_key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorize_params: list[dict[str, str]] = field(default_factory=list)
    ended_sessions: list[str] = field(default_factory=list)  # subjects signed out at the provider

    def sign(self, claims: dict[str, Any], *, forged: bool = False) -> str:
        # A forger claims the provider's key id: only the signature itself gives it away.
        key = self.other_key if self.sign_with_other_key or forged else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


_KNOWN_AUTHORIZE = {"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "acr_values", "claims"}


def create_app(provider: Provider) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        base = provider.base_url
        document = {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
            "userinfo_signing_alg_values_supported": ["RS256"],
        }
        if provider.end_session:
            document["end_session_endpoint"] = f"{base}/logout"
        return document

    @app.get("/jwks")
    def jwks() -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(provider.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    @app.get("/authorize")
    def authorize(request: Request) -> Response:
        params = dict(request.query_params)
        provider.authorize_params.append(params)
        if params.get("client_id") != CLIENT_ID or params.get("response_type") != "code":
            raise HTTPException(400, "invalid_request")
        if provider.proconnect_rules:
            if len(params.get("state", "")) < 32 or len(params.get("nonce", "")) < 32:
                raise HTTPException(400, "state et nonce doivent compter au moins 32 caractères")
            if set(params) - _KNOWN_AUTHORIZE:
                raise HTTPException(400, f"paramètres inconnus : {sorted(set(params) - _KNOWN_AUTHORIZE)}")
        code = secrets.token_urlsafe(24)
        provider.codes[code] = {"params": params, "at": time.time(), "user": dict(provider.user)}
        query = urlencode({"code": code, "state": params["state"]})
        return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)

    @app.post("/token")
    def token(
        grant_type: str = Form(),
        code: str = Form(),
        redirect_uri: str = Form(),
        client_id: str = Form(),
        client_secret: str = Form(),
        code_verifier: str | None = Form(None),
    ) -> Response:
        pending = provider.codes.pop(code, None)  # a code is used once
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET or grant_type != "authorization_code":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if pending is None or time.time() - pending["at"] > provider.code_lifetime:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        params = pending["params"]
        if redirect_uri != params["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if "code_challenge" in params:
            computed = base64.urlsafe_b64encode(hashlib.sha256((code_verifier or "").encode()).digest())
            if computed.rstrip(b"=").decode() != params["code_challenge"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        user = pending["user"]
        id_token = provider.sign(
            {
                "iss": provider.base_url,
                "aud": CLIENT_ID,
                "sub": user["sub"],
                "iat": now,
                "exp": now + 60,
                "nonce": "rejoué-" + params["nonce"] if provider.wrong_nonce else params["nonce"],
            }
        )
        access = secrets.token_urlsafe(24)
        provider.tokens[access] = user
        return JSONResponse({"access_token": access, "token_type": "Bearer", "id_token": id_token, "expires_in": 60})

    @app.get("/userinfo")
    def userinfo(authorization: str = Header("")) -> Response:
        user = provider.tokens.get(authorization.removeprefix("Bearer ").strip())
        if user is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        claims = dict(user)
        if provider.userinfo_other_subject:
            claims["sub"] = "quelqu-un-d-autre"
        if provider.signed_userinfo:
            signed = provider.sign(
                {**claims, "iss": provider.base_url, "aud": CLIENT_ID}, forged=provider.sign_userinfo_with_other_key
            )
            return Response(signed, media_type="application/jwt")
        return JSONResponse(claims)

    @app.get("/logout")
    def logout(id_token_hint: str = "", state: str = "", post_logout_redirect_uri: str = "") -> Response:
        # The hint names the session and the client; an expired ID token is still a valid hint.
        try:
            claims = jwt.decode(
                id_token_hint,
                provider.key.public_key(),
                algorithms=["RS256"],
                audience=CLIENT_ID,
                issuer=provider.base_url,
                options={"verify_exp": False},
            )
        except jwt.PyJWTError as exc:
            raise HTTPException(400, f"id_token_hint invalide : {exc}") from exc
        if post_logout_redirect_uri and post_logout_redirect_uri not in provider.post_logout_redirect_uris:
            raise HTTPException(400, "post_logout_redirect_uri non déclarée pour ce client")
        if provider.proconnect_rules and (len(state) < 32 or not post_logout_redirect_uri):
            raise HTTPException(400, "state (≥ 32 caractères) et post_logout_redirect_uri sont obligatoires")
        provider.ended_sessions.append(claims["sub"])
        if not post_logout_redirect_uri:
            return JSONResponse({"status": "déconnecté"})
        query = f"?{urlencode({'state': state})}" if state else ""
        return RedirectResponse(f"{post_logout_redirect_uri}{query}", status_code=302)

    return app


def serve(provider: Provider) -> tuple[uvicorn.Server, threading.Thread]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider.base_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(create_app(provider), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    assert server.started, "le fournisseur OpenID Connect de test n'a pas démarré"
    return server, thread
