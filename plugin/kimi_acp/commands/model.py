"""``kimi-acp model [REF|default] --session KEY``: a session's model choice for its spawns."""

from __future__ import annotations

from typing import Any

from .common import load, print_json


def run(args: Any) -> int:
    from ..plugins import get_plugin_manager
    from ..routing import require_ref
    from ..sessions import SessionModels

    with SessionModels() as table:
        if args.ref is None:
            ref = table.get(args.session)
            if args.json:
                print_json({"session": args.session, "model": ref})
            else:
                print(f"{args.session}: {ref or 'default (no session choice; agent/global defaults apply)'}")
            return 0
        if args.ref.lower() == "default":
            table.clear(args.session)
            get_plugin_manager().hook.kimi_acp_model_switched(session_key=args.session, model_ref=None)
            if args.json:
                print_json({"session": args.session, "model": None})
            else:
                print(f"{args.session}: cleared; agent/global defaults apply")
            return 0
        cfg = load(args)
        backend, model = require_ref(cfg, args.ref)
        table.set(args.session, args.ref)
        get_plugin_manager().hook.kimi_acp_model_switched(session_key=args.session, model_ref=args.ref)
        if args.json:
            print_json({"session": args.session, "model": args.ref, "backend": backend.name, "modelId": model})
        else:
            print(f"{args.session}: spawns now use '{args.ref}' (backend {backend.name}" + (f", model {model})" if model else ")"))
        return 0
