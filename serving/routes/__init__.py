"""Routers, one per resource; ``api_router`` is everything under ``/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from serving.routes import auth, features, history, keys, models, predictions

api_router = APIRouter(prefix="/v1")
api_router.include_router(auth.router)
api_router.include_router(predictions.router)
api_router.include_router(history.router)
api_router.include_router(features.router)
api_router.include_router(models.router)
api_router.include_router(keys.router)
