"""The FastAPI app: endpoints, error replies and the lifespan of the per-model workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..contract.errors import AigcError, ConfigError, UsageError, first_line
from ..generation.inference import check_seed as checked_seed, fresh_seed
from . import encoding
from .batching import Batcher, ClientGone, Job, QueueFull
from .models import RequestError, ServedModel, load_models
from .security import APIKeyMiddleware, BodyLimitMiddleware, HostCheckMiddleware
from .settings import ServerSettings, is_loopback

log = logging.getLogger("aigc.server")


# Strict types: JSON true is not the number 1, and "2" is not 2 (pydantic's lax mode takes both).
class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: StrictInt = Field(1, description="number of items (at most the server's max_samples)")
    seed: Optional[StrictInt] = Field(None, description="same seed, same items; omitted: a fresh seed, returned in the reply")
    options: dict[str, Any] = Field(default_factory=dict, description="the model's generation options (see GET /v1/models)")
    postprocess: StrictBool = Field(True, description="apply the run's post-processors")
    adapter: Optional[StrictStr] = Field(None, description="on a base that carries personalised runs' adapters "
                                                           "(its `adapters` in GET /v1/models): which one to "
                                                           "generate with; null: the base alone")
    output: Literal["json", "files"] = Field(
        "json", description="json: items inline (base64 for images/audio); files: the one sample's own file when "
                            "the request made one sample, else a zip of every item (derived items such as grids "
                            "included) with meta.json")


class StreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: StrictInt = Field(1, description="texts to stream one after another; text i is the stream of seed + i")
    seed: Optional[StrictInt] = None
    options: dict[str, Any] = Field(default_factory=dict)
    adapter: Optional[StrictStr] = Field(None, description="as for generate: the base's adapter to stream with")


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def create_app(runs: Sequence[str | Path] | dict[str, ServedModel], settings: ServerSettings | None = None) -> FastAPI:
    """Load every run now (a bad run directory fails here, before a socket is bound)."""
    settings = settings or ServerSettings()
    models = runs if isinstance(runs, dict) else load_models(runs)
    wait_s = settings.batch_wait_ms / 1000.0
    batchers = {name: Batcher(m, settings.max_batch, wait_s, settings.queue_size, stuck_after_s=settings.timeout_s)
                for name, m in models.items()}
    stream_pools = {name: ThreadPoolExecutor(settings.max_streams, thread_name_prefix=f"aigc-stream-{name}")
                    for name, m in models.items() if m.can_stream}
    active_streams = {name: 0 for name in models}
    streams_lock = threading.Lock()
    state = {"ready": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        for b in batchers.values():
            b.start()
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            for b in batchers.values():
                await b.stop()
            for pool in stream_pools.values():
                pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="aigc",
        version=__version__,
        description="Generate content from trained aigc runs. Images come as PNG, audio as WAV, text as strings.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their code from a CDN; /docs below is local
        redoc_url=None,
    )
    app.state.models = models
    app.state.batchers = batchers
    app.state.settings = settings
    app.state.active_streams = active_streams

    # -- errors: one JSON shape, {"error": "...", "field": "..."} ---------------------------
    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError):
        body = {"error": str(exc)}
        if exc.field:
            body["field"] = exc.field
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(QueueFull)
    async def _queue_full(request: Request, exc: QueueFull):
        return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"type": "", "loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            where = first.get("ctx", {}).get("error", "")
            return JSONResponse({"error": f"malformed JSON in the request body{': ' + where if where else ''}"},
                                status_code=400)
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc)
        msg = first.get("msg", "invalid value")
        if not loc:
            msg = "the request body must be a JSON object (Content-Type: application/json)"
        if first.get("type") == "extra_forbidden":
            msg = "unknown field (valid fields: " + ", ".join(_fields_of(request)) + ")"
        return JSONResponse({"error": f"{field}: {msg}" if field else msg, **({"field": field} if field else {})},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    def _fields_of(request: Request) -> list[str]:
        cls = StreamRequest if request.url.path.endswith("/stream") else GenerateRequest
        return list(cls.model_fields)

    def get_model(name: str) -> ServedModel:
        model = models.get(name)
        if model is None:
            raise RequestError(404, f"unknown model {name!r} (served: {', '.join(sorted(models))})", "model")
        return model

    def check_seed(seed: int | None) -> None:
        """The one seed check (``aigc_core.generation.inference.check_seed``), as a 422 naming the field."""
        if seed is not None:
            try:
                checked_seed(seed)
            except UsageError as exc:
                raise RequestError(422, str(exc), "seed") from None

    # -- health ----------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"],
             summary="Readiness: models loaded, their workers running and none stuck past the time limit")
    async def readyz():
        detail = {name: {"alive": b.alive, "stuck": b.stuck, "busy_s": round(b.busy_s, 3), "queued": len(b.pending),
                         "active_streams": active_streams[name]}
                  for name, b in batchers.items()}
        ready = state["ready"] and all(d["alive"] and not d["stuck"] for d in detail.values())
        return JSONResponse({"ready": ready, "models": detail}, status_code=200 if ready else 503)

    # -- models ----------------------------------------------------------------------------
    @app.get("/v1/models", tags=["models"], summary="Served models with their modality and generation options")
    async def list_models() -> dict:
        return {"models": [m.describe() for m in models.values()],
                "limits": {"max_samples": settings.max_samples, "max_prompt_chars": settings.max_prompt_chars,
                           "max_body_bytes": settings.max_body_bytes}}

    @app.get("/v1/models/{name}", tags=["models"], summary="One model's modality and generation options")
    async def show_model(name: str) -> dict:
        return get_model(name).describe()

    @app.get("/v1/models/{name}/progress", tags=["generate"],
             summary="Progress of the generation the model's worker is on (steps the generator reported)")
    async def progress(name: str) -> dict:
        get_model(name)
        batcher = batchers[name]
        done_total = batcher.progress
        return {"busy": batcher.busy_since is not None, "queued": len(batcher.pending),
                "done": done_total[0] if done_total else None, "total": done_total[1] if done_total else None}

    @app.post("/v1/models/{name}/generate", tags=["generate"], summary="Generate items",
              responses={200: {"content": {"application/json": {}, "image/png": {}, "audio/wav": {},
                                           "text/plain": {}, "application/zip": {}}},
                         429: {"description": "queue full; see Retry-After"},
                         503: {"description": "the model's worker is stuck past the time limit; retry later"},
                         504: {"description": "timed out (the generation is cancelled)"}})
    async def generate(name: str, body: GenerateRequest, request: Request):
        model = get_model(name).pick(body.adapter)  # an adapter is served as its own model: its own batches
        if not 1 <= body.n <= settings.max_samples:
            raise RequestError(422, f"n: must be between 1 and {settings.max_samples}, got {body.n}", "n")
        check_seed(body.seed)
        options = model.validated_options(body.options, settings)
        loop = asyncio.get_running_loop()
        job = Job(body.n, body.seed, options, body.postprocess, loop.create_future())
        started = time.perf_counter()
        batcher = batchers[model.name]
        batcher.submit(job)
        try:  # a client that leaves or a timeout stops the generation at its next step
            result = await batcher.wait(job, request.receive, settings.timeout_s)
        except TimeoutError:
            raise RequestError(504, f"generation took longer than the server's limit of {settings.timeout_s:g} s") from None
        except ClientGone:  # nobody reads this reply; 499 as nginx logs it
            raise RequestError(499, "the client closed the connection; its generation was stopped") from None
        except ConfigError as exc:  # the generator refused an option value (a label it never saw...)
            key = exc.key.replace("generate.", "options.", 1) if exc.key.startswith("generate.") else exc.key
            message = str(exc).replace(exc.key, key, 1) if exc.key else str(exc)
            raise RequestError(422, message, key or None) from None
        except RequestError:
            raise
        except AigcError as exc:
            raise RequestError(500, f"generation failed: {first_line(exc)}") from None
        except Exception as exc:
            log.exception("generation failed for model %s", name)
            raise RequestError(500, f"generation failed: {type(exc).__name__}: {first_line(exc)}") from None
        content = result.content
        summary = {"model": name, "modality": content.modality, "seed": result.seed}
        if body.adapter is not None:
            summary["adapter"] = body.adapter
        if body.output == "files":
            if not content.items:
                raise RequestError(422, "every item was dropped by the run's post-processors; nothing to send")
            data, media_type, filename = await asyncio.to_thread(encoding.to_files, content, summary, body.n)
            headers = {"Content-Disposition": f'attachment; filename="{filename}"', "X-Aigc-Seed": str(result.seed)}
            return Response(data, media_type=media_type, headers=headers)
        items = await asyncio.to_thread(encoding.to_json, content)
        return {
            **summary,
            "items": items,
            "dropped": encoding.dropped_json(content),
            "batch_samples": result.batch_size,
            "generate_ms": round(result.generate_s * 1000, 2),
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        }

    @app.post("/v1/models/{name}/stream", tags=["generate"], summary="Stream text as server-sent events",
              response_class=StreamingResponse,
              responses={200: {"content": {"text/event-stream": {}},
                               "description": "events: start {seed, n}, piece {text, index, seed}, done, "
                                              "error {error}"}})
    async def stream(name: str, body: StreamRequest):
        model = get_model(name).pick(body.adapter)
        served = model.name  # an adapter's own model: its stream slots and its pool
        if not model.can_stream:
            raise RequestError(422, f"model {name!r} ({model.inference.generator_name}) does not stream; use /generate", "model")
        if not 1 <= body.n <= settings.max_samples:
            raise RequestError(422, f"n: must be between 1 and {settings.max_samples}, got {body.n}", "n")
        check_seed(body.seed)
        check_seed(None if body.seed is None else body.seed + body.n - 1)
        options = model.validated_options(body.options, settings)
        seed = body.seed if body.seed is not None else fresh_seed()
        with streams_lock:
            if active_streams[served] >= settings.max_streams:
                raise QueueFull(max(1, int(settings.timeout_s // 10)))
            active_streams[served] += 1
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def post(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop is gone: the server is shutting down
                stop.set()

        def produce() -> None:
            end = object()
            # On a shared base the stream holds the base until it ends: a generator may decode in a
            # thread of its own (aigc-text does), which a lock taken per piece cannot hold back, and
            # another adapter selected meanwhile would change its text. A model of its own takes
            # turns piece by piece, its batches going on between pieces.
            whole = model.turn() if model.shared else contextlib.nullcontext()
            step = contextlib.nullcontext if model.shared else model.turn
            try:
                with whole:
                    for index in range(body.n):  # text i is what a stream of seed + i sends alone
                        with step():  # a generator may do work before its first piece
                            pieces = iter(model.inference.stream(seed + index, options=options))
                        try:
                            while not stop.is_set():
                                with step():  # one step at a time: batches for others go on between steps
                                    piece = next(pieces, end)
                                if piece is end:
                                    break
                                post("piece", (index, str(piece)))
                        finally:
                            close = getattr(pieces, "close", None)
                            if close is not None:
                                close()  # runs the generator's cleanup: the cancelled generation stops here
                        if stop.is_set():
                            break
            except Exception as exc:
                log.warning("stream of model %s failed: %s", served, first_line(exc))
                post("error", exc)
            finally:
                with streams_lock:
                    active_streams[served] -= 1
                post("end", None)

        try:
            stream_pools[served].submit(produce)
        except RuntimeError:
            with streams_lock:
                active_streams[served] -= 1
            raise RequestError(503, "the server is shutting down") from None

        async def events():
            count = 0
            deadline = loop.time() + settings.timeout_s
            try:
                yield _sse("start", {"model": name, "seed": seed, "n": body.n})
                while True:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        yield _sse("error", {"error": f"stream exceeded the server's limit of {settings.timeout_s:g} s"})
                        return
                    try:
                        kind, value = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        continue
                    if kind == "piece":
                        count += 1
                        yield _sse("piece", {"text": value[1], "index": value[0], "seed": seed + value[0]})
                    elif kind == "error":
                        err = str(value) if isinstance(value, ConfigError) else first_line(value)
                        yield _sse("error", {"error": f"generation failed: {err}"})
                        return
                    else:
                        yield _sse("done", {"pieces": count, "seed": seed, "n": body.n})
                        return
            finally:
                stop.set()  # the client left or we are done: the producer stops at its next step

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # -- the web page (package data, nothing fetched from elsewhere) ------------------------
    page = {name: _static(name) for name in ("index.html", "app.js", "spectrogram.js", "style.css")}

    @app.get("/", include_in_schema=False)
    async def index():
        return HTMLResponse(page["index.html"], headers={"Cache-Control": "no-store"})

    @app.get("/static/app.js", include_in_schema=False)
    async def app_js():
        return Response(page["app.js"], media_type="text/javascript")

    @app.get("/static/spectrogram.js", include_in_schema=False)
    async def spectrogram_js():  # the audio results' spectrograms (index.html loads it before app.js)
        return Response(page["spectrogram.js"], media_type="text/javascript")

    @app.get("/static/style.css", include_in_schema=False)
    async def style_css():
        return Response(page["style.css"], media_type="text/css")

    @app.get("/docs", include_in_schema=False)
    async def api_docs():
        from .apidocs import render

        return HTMLResponse(render(app.openapi()), headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    # -- middleware: the outermost runs first ----------------------------------------------
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    if settings.requires_key:
        app.add_middleware(APIKeyMiddleware, api_key=settings.api_key)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type", "X-API-Key"])
    if is_loopback(settings.host):  # outermost: a rebinding page learns nothing, not even 401
        app.add_middleware(HostCheckMiddleware, allowed=settings.allowed_hosts)
    return app


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"
