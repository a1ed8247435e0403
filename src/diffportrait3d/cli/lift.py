"""`dp3d lift`: fit 3D Gaussians to a folder of posed views; write a 3DGS PLY and a GLB mesh."""

from .common import add_seed_arg, number

MAX_STEPS = 100_000


def add_parser(sub, name):
    p = sub.add_parser(name, help="fit a 3D head to posed views: 3D Gaussians (.ply) and a mesh (.glb)",
                       description="Fit 3D Gaussians (pure PyTorch; CPU or GPU) to a folder of views with their EG3D "
                                   "cameras in dataset.json (a `dp3d render` folder output, or any EG3D-style folder of "
                                   "one subject), then write OUT.ply (the 3D Gaussian Splatting format splat viewers "
                                   "read) and OUT.glb (a closed triangle mesh with vertex colours, from the Gaussians' "
                                   "density by marching cubes). The backdrop is learned as one 2D image behind all views "
                                   "and is not part of the 3D result.")
    p.add_argument("views", help="folder of views + dataset.json")
    p.add_argument("-o", "--output", required=True, help="OUT.ply or OUT.glb (both files are written)")
    p.add_argument("--steps", type=number(1, MAX_STEPS), default=300, help="optimisation steps (default 300)")
    p.add_argument("--resolution", type=number(16, 1024), default=64,
                   help="fit at this many pixels per side (views are resized; default 64)")
    p.add_argument("--gaussians", type=number(16, 2_000_000), default=2000, help="number of Gaussians (default 2000)")
    p.add_argument("--mesh-grid", type=number(16, 512), default=96, dest="mesh_grid",
                   help="voxels per side of the density grid the mesh is extracted from (default 96)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    add_seed_arg(p, help="random seed of the initial Gaussians and the view order")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.ply / OUT.glb if they exist")
    p.set_defaults(func=run)


def run(args):
    from ..app.lift import lift, lift_outputs, summary
    from ..lift.fit import FitConfig

    lift_outputs(args.output, args.overwrite)  # before the views are read: a bad -o fails first
    from ..errors import UserError
    from ..pipeline.loading import resolve_device

    try:
        device = str(resolve_device(args.device))
    except RuntimeError:  # torch's own error for a device string it cannot parse
        raise UserError(f"--device {args.device}: not a device; use auto, cpu, cuda or cuda:N") from None
    cfg = FitConfig(steps=args.steps, resolution=args.resolution, gaussians=args.gaussians, seed=args.seed, device=device)
    result = lift(args.views, args.output, cfg, mesh_grid=args.mesh_grid, overwrite=args.overwrite)
    print(summary(result))
