"""Cameras: EG3D's 25-float labels (eg3d; the same math on torch tensors in eg3d_torch) and the camera
paths the CLI describes (trajectories)."""

from .eg3d import (FOCAL, LOOKAT, RADIUS, camera_centres, camera_label, camera_labels, camera_origin, check_label,
                   from_eg3d_angles, intrinsics, label_to_angles, look_at, pixel_rays, project, split_label)
from .trajectories import PATHS, Trajectory, load_trajectory, make_trajectory, parse_range

__all__ = ["FOCAL", "LOOKAT", "RADIUS", "camera_centres", "camera_label", "camera_labels", "camera_origin", "check_label",
           "from_eg3d_angles", "intrinsics", "label_to_angles", "look_at", "pixel_rays", "project", "split_label",
           "PATHS", "Trajectory", "load_trajectory", "make_trajectory", "parse_range"]
