"""`dp3d serve`: a web page (Gradio) for rendering turntables, on this machine's loopback by default."""

from .common import add_model_args, number, settings_from_args


def add_parser(sub, name):
    p = sub.add_parser(name, help="serve a web page for rendering turntables (Gradio)",
                       description="Loads the model once and serves a page: upload a portrait or pick a sample, choose the "
                                   "camera path, render; results as a turntable video, a contact sheet and a zip of the views, and "
                                   "on request the head in 3D (a mesh viewer, .ply and .glb downloads). "
                                   "Also serves the API endpoint /render for gradio_client. Listens on 127.0.0.1 (this machine "
                                   "only) unless --host says otherwise; the page has no login.")
    add_model_args(p, default_model="mini")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every network; see the README first)")
    p.add_argument("--port", type=number(1, 65535), default=7860, help="port, 1..65535")
    p.set_defaults(func=run)


def run(args):
    from ..app.web import serve

    serve(settings_from_args(args), args.host, args.port)
