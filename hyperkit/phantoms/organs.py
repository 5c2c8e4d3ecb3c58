"""Parameter tables of the procedural torso (:mod:`hyperkit.phantoms.anatomy`), one per organ.

Every number that shapes a subject lives here, with its unit:

- lengths and radii in **mm** (RAS+: x to the patient's right, y anterior, z superior;
  z = 0 the lower end plate of L5, x = 0 the midline);
- ``(dx, dy, dz)`` offsets in mm; where a structure exists on both sides, ``dx`` is given
  for the patient's right and mirrored (``x -> sign * x``) for the left;
- **cavity points** ``(dz, fx, fy)``: a height offset (mm) from a landmark, then ``fx`` of the
  body cavity's half-width and ``fy`` of the way from the spine to the anterior cavity wall
  (:meth:`~hyperkit.phantoms.anatomy.Torso.cavity_point`);
- **spine points** ``(dx, dy)`` / ``(dx, dy, dz)``: mm from the vertebral-body centreline at a
  given height (:meth:`~hyperkit.phantoms.anatomy.Torso.spine_point`);
- ``*_sd`` fields: the standard deviation of a normal draw in the field's unit; ``*_log_sd``:
  of the log of a multiplicative factor (``exp(normal(0, sd))``); ``(lo, hi)``: a uniform draw;
- angles in degrees; probabilities and fractions unitless.

Sizes follow adult anatomy textbooks (organ lengths, vertebral heights); the variation between
subjects is deliberately wide. Changing any value changes the phantoms (and the pinned hashes
of ``tests/test_phantom_hashes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

Vec = tuple[float, float, float]

#: centreline sampling of tubes (mm); independent of the grid.
TUBE_STEP_MM = 6.0

#: vertebral levels from the bottom up, with the body + disc height (mm) of an average adult.
VERTEBRAL_LEVELS: tuple[tuple[str, float], ...] = (
    ("L5", 35), ("L4", 35), ("L3", 34), ("L2", 33), ("L1", 32),
    ("T12", 30), ("T11", 28), ("T10", 27), ("T9", 26), ("T8", 25), ("T7", 24),
    ("T6", 23), ("T5", 22), ("T4", 21), ("T3", 21), ("T2", 21), ("T1", 20),
)


@dataclass(frozen=True)
class Habitus:
    """Whole-body scale factors and fat (drawn first)."""

    height_log_sd: float = 0.05       # height scale: every craniocaudal length
    female_height: float = 0.94       # x height scale for women
    width_log_sd: float = 0.07        # width scale: every transverse length
    female_width: float = 0.95
    fat_median_male_mm: float = 13    # subcutaneous fat thickness, log-normal
    fat_median_female_mm: float = 16
    fat_log_sd: float = 0.45
    fat_range_mm: tuple[float, float] = (4, 55)
    belly_mean: float = 0.05          # belly protrusion (fraction of the reference profile depth)
    belly_sd: float = 0.12
    belly_per_fat_mm: float = 0.01    # extra belly per mm of fat above the reference
    reference_fat_mm: float = 15      # the fat thickness of the reference body profile
    muscle_log_sd: float = 0.15       # muscle scale: wall, back muscles, psoas, gluteus
    female_muscle: float = 0.85


@dataclass(frozen=True)
class Spine:
    """Vertebral column, curvature, femoral heads and diaphragm domes."""

    level_height_log_sd: float = 0.03
    disc_fraction: float = 0.22           # of each level's height (body = the rest)
    top_above_t1_mm: float = 15           # upper end of the torso above T1 (x height scale)
    femoral_heads_z_mm: float = -95.0     # below the L5 end plate (x height scale)
    femoral_heads_sd_mm: float = 5
    lordosis_mm: tuple[float, float] = (16, 6)    # (mean, sd) anterior bulge at L3
    kyphosis_mm: tuple[float, float] = (26, 8)    # (mean, sd) posterior bulge at T7
    scoliosis_sd_mm: float = 3                    # lateral amplitude
    scoliosis_phase_mm: tuple[float, float] = (0, 600)
    scoliosis_wavelength_mm: float = 180          # x = a sin((z - phase) / wavelength)
    # sagittal centreline y (mm) at knots: below the femoral heads, pelvis, L5, L3, T12, T7, T1, above the top
    curve_below_heads_mm: float = 120
    curve_pelvis_z_mm: float = -60
    curve_above_top_mm: float = 200
    curve_pelvis_y_mm: tuple[float, float] = (-60, -35)   # at the lowest knot and at z = -60
    t12_lordosis_share: float = 0.3
    t1_kyphosis_share: float = -0.3
    t1_offset_y_mm: float = 5
    top_y_mm: float = 20
    right_dome_above_t10_mm: tuple[float, float] = (5, 12)   # (mean, sd)
    left_dome_below_right_mm: tuple[float, float] = (8, 25)  # uniform
    dome_offset_x_mm: tuple[float, float] = (45, 65)         # uniform, each side of the midline


@dataclass(frozen=True)
class Diaphragm:
    """Two domes over the abdomen (height of the surface above (x, y))."""

    centre_in_front_of_spine_mm: float = 60
    lateral_fall_mm2: float = 150.0     # z drops (dx)^2 / this
    sagittal_fall_mm2: float = 260.0    # z drops (dy)^2 / this
    posterior_slope: float = 0.25       # extra drop per mm behind the dome centre


#: the knots of the body's cross-section profile: (landmark, offset mm), bottom up.
BODY_KNOTS: tuple[tuple[str, float], ...] = (
    ("fem", -140), ("fem", -60), ("fem", 0), ("L5", 0), ("L3", 0), ("T12", 0), ("T9", 0),
    ("T6", 0), ("T3", 0), ("top", 0), ("top", 300),
)


@dataclass(frozen=True)
class Body:
    """The skin, the body wall and the cavity: superellipse sections interpolated between BODY_KNOTS."""

    half_width_mm: tuple[float, ...] = (60, 150, 172, 160, 148, 155, 165, 170, 165, 150, 150)
    hip_knots: tuple[int, int] = (1, 4)       # knots [1, 4) widened by female_hip_width
    female_hip_width: float = 1.08
    half_depth_mm: tuple[float, ...] = (50, 95, 105, 105, 100, 105, 115, 118, 110, 95, 95)
    belly_knots: tuple[int, int] = (3, 6)     # knots [3, 6) (L5, L3, T12) bulge with the belly
    belly_depth_mm: tuple[float, ...] = (40, 90, 30)
    depth_per_fat_mm: float = 0.8             # extra half-depth per mm of fat (half-width: 1)
    half_width_sd_mm: float = 5
    half_depth_sd_mm: float = 4
    min_half_axis_mm: float = 30
    wall_mm: tuple[float, ...] = (8, 14, 16, 14, 11, 14, 18, 18, 18, 16, 16)   # x muscle scale
    spine_to_back_muscle_mm: float = 75       # x muscle scale, + back_per_fat_mm x fat
    back_per_fat_mm: float = 0.8
    cavity_behind_spine_mm: float = 35        # the cavity ends this far behind the spine ...
    cavity_back_slope: float = 0.3            # ... rising by this per mm off the midline


@dataclass(frozen=True)
class Thigh:
    """Thighs below the gluteal fold (a tube of fat around muscle)."""

    offset_x_mm: float = 95               # x width scale
    top_in_front_of_spine_mm: float = 70
    top_below_heads_mm: float = 40
    radius_mm: float = 62                 # x width scale x muscle scale, + fat
    path_mm: tuple[Vec, Vec] = ((5, 10, -200), (0, 20, -400))   # further points from the top
    radius_factors: Vec = (1.05, 1.0, 0.9)
    fold_below_heads_mm: float = 50


@dataclass(frozen=True)
class Lungs:
    """Lungs with their lobes, and the mediastinal fat."""

    fissure_sd_mm: float = 8              # six height offsets (three used)
    fissure_tilt_sd: float = 0.08         # mm of height per mm of x, three fissures
    bottom_below_domes_mm: float = 90     # painting box
    top_margin_mm: float = 50
    apex_margin_mm: float = 10            # apical taper starts above T3 (+ this)
    apex_min_taper: float = 0.15
    apex_min_depth_taper: float = 0.6
    behind_spine_mm: float = 38
    above_top_mm: float = 5
    left_oblique_below_dome_mm: float = 10
    right_oblique_below_t4_mm: float = 10
    oblique_power: float = 0.8
    mediastinum_spine_point: Vec = (-8, 48, 10)       # at T5
    mediastinum_radii_mm: Vec = (26, 58, 150)         # z x height scale
    mediastinum_width_sd_mm: float = 3
    mediastinum_tilt_sd_deg: float = 4
    shape_wobble_sd: float = 0.03


@dataclass(frozen=True)
class Heart:
    """Heart, chambers, pericardium, pulmonary veins and arteries, left atrial appendage."""

    size_log_sd: float = 0.1
    base_above_left_dome_mm: float = 58       # x size
    base_sd_mm: float = 8
    centre_from_spine_mm: tuple[float, float] = (-22, 78)   # (dx, dy), each +- centre_sd_mm
    centre_sd_mm: float = 6
    apex_direction: Vec = (-0.65, 0.45, -0.55)              # each +- apex_direction_sd
    apex_direction_sd: float = 0.1
    roll_sd_deg: float = 15
    radii_mm: Vec = (46, 42, 60)                            # x size
    radii_log_sd: float = 0.06
    wobble_sd: float = 0.04
    la_behind_centre_mm: float = 38                         # along the apex axis, x size
    la_offset_mm: Vec = (-10, -18, 5)                       # x size
    la_offset_sd_mm: float = 4
    la_radii_mm: Vec = (31, 22, 25)
    la_axis_spread: float = 0.4                             # y, z of the atrium's axis x normal(0, 1)
    la_size_sd: float = 0.22                                # the left atrium varies most (a target)
    la_axis_sd: float = 0.25
    la_angle_sd_deg: float = 30
    la_wobble_sd: float = 0.14
    la_bend_sd: float = 0.25
    ra_size_sd: float = 0.12
    ventricle_size_sd: float = 0.1
    ra_behind_centre_mm: float = 30
    ra_offset_mm: Vec = (32, -5, 8)                         # x size
    ra_radii_mm: Vec = (22, 20, 26)
    lv_along_axis_mm: float = 12
    lv_offset_mm: Vec = (-6, -4, 0)
    lv_radii_mm: Vec = (20, 20, 36)
    rv_along_axis_mm: float = 5
    rv_offset_mm: Vec = (14, 20, 0)
    rv_radii_mm: Vec = (16, 25, 34)
    pericardium_mm: float = 4                               # + |normal(0, 3)|
    pericardium_sd_mm: float = 3
    atrial_wall_mm: float = 3
    pv_ostia_dz_mm: tuple[float, float] = (10, -8)          # two veins per side
    pv_ostium_offset_mm: tuple[float, float] = (18, -4)     # (dx, dy) from the atrium, x size
    pv_direction_y: float = -0.2
    pv_direction_z: float = 0.15                            # x sign(dz)
    pv_direction_sd: float = 0.2
    pv_first_point_mm: float = 12
    pv_length_mm: tuple[float, float] = (30, 45)
    pv_radius_mm: tuple[float, float] = (5.5, 8.5)
    pv_radius_factors: Vec = (1.0, 0.85, 0.6)
    pv_ostium_length_mm: tuple[float, float] = (4, 20)      # labelled as atrium
    laa_direction: Vec = (-0.7, 0.6, 0.3)
    laa_direction_sd: float = 0.3
    laa_base: Vec = (-0.3, 0.5, 0.3)                        # on the atrium, in its radii
    laa_length_mm: tuple[float, float] = (18, 35)
    laa_bend_sd_mm: float = 3
    laa_radii_mm: tuple[tuple[float, float], ...] = ((6, 9), (5, 8), (3, 5))
    pa_start_mm: Vec = (5, 40, 25)                          # from the heart centre, x size
    pa_bend_mm: Vec = (-15, -10, 35)
    pa_bifurcation: tuple[float, float] = (-20, 45)         # spine point at T5
    pa_radii_mm: Vec = (14, 13, 11)
    pa_left_end: Vec = (-70, 30, -5)                        # spine point at T5
    pa_left_radii_mm: tuple[float, float] = (10, 7)
    pa_right_mid: Vec = (20, 38, 3)
    pa_right_end: Vec = (70, 30, -8)
    pa_right_radii_mm: Vec = (10, 10, 7)


@dataclass(frozen=True)
class Liver:
    """Liver lobes, vessel trees, tumours and the gallbladder."""

    size_log_sd: float = 0.13
    right_below_dome_mm: float = 68             # x size
    right_cavity: tuple[float, float] = (0.45, 0.52)   # (fx, fy)
    right_shift_sd_mm: float = 6
    right_radii: tuple[float, float, float] = (0.62, 0.62, 88)  # cavity half-width, spine-to-wall depth, mm
    right_axis_sd: float = 0.14
    right_angle_sd_deg: float = 15
    right_wobble_sd: float = 0.15
    right_bend_sd: float = 0.2
    taper_sd: float = 0.2
    left_size_log_sd: float = 0.4
    left_below_dome_mm: float = 45              # x size
    left_cavity: tuple[float, float] = (-0.12, 0.72)
    left_shift_sd_mm: tuple[float, float] = (10, 5)
    left_radii: tuple[float, float, float] = (0.5, 0.3, 44)
    left_size_exponents: Vec = (1, 0.5, 0.6)
    left_axis_sd: float = 0.12
    left_angle_sd_deg: float = 15
    left_wobble_sd: float = 0.12
    left_tilt_deg: tuple[float, float] = (15, 10)   # (mean, sd) about y
    left_turn_deg: tuple[float, float] = (-10, 10)  # (mean, sd) about z
    riedel_probability: float = 0.3             # a tongue down the right side
    riedel_offset_mm: tuple[float, float, float] = (15, -10, -75)   # z x size
    riedel_radii_mm: Vec = (28, 30, 50)
    riedel_size_sd: float = 0.2
    riedel_wobble_sd: float = 0.1
    caudate_below_dome_mm: float = 70
    caudate_spine_offset: tuple[float, float] = (18, 42)
    caudate_radii_mm: Vec = (18, 16, 26)
    caudate_size_sd: float = 0.15
    caudate_wobble_sd: float = 0.08
    below_diaphragm_mm: float = 4
    hilum_below_dome_mm: float = 95             # x size
    hilum_spine_offset: tuple[float, float] = (45, 62)
    portal_branches: tuple[tuple[Vec, float], ...] = (((0.6, 0.2, 0.5), 7.5), ((-0.8, 0.4, 0.3), 6.5))
    hepatic_vein_root_below_dome_mm: float = 25
    hepatic_vein_root_offset: tuple[float, float] = (22, 35)
    hepatic_vein_directions: tuple[Vec, ...] = ((0.9, 0.3, -0.3), (0.1, 0.8, -0.4), (-0.7, 0.7, -0.2))
    hepatic_vein_direction_sd: float = 0.15
    hepatic_vein_radius_mm: float = 6.0
    tree_levels: int = 4


@dataclass(frozen=True)
class VesselTree:
    """A random branching tree (liver vessels)."""

    branch_length_mm: tuple[float, float] = (22, 42)
    segments: int = 3
    wiggle_sd: float = 0.15
    end_radius_factor: float = 0.8
    inside_tolerance: float = 1.05         # branch again only while the end is inside the lobes
    turn: tuple[float, float] = (0.4, 0.9)
    child_radius_factor: float = 0.72


@dataclass(frozen=True)
class LiverTumour:
    """Liver lesions (count: Poisson with the cohort's mean)."""

    spread_mm: float = 80                    # rejection sampling box around the right lobe
    median_radius_mm: float = 12
    radius_log_sd: float = 0.6
    radius_range_mm: tuple[float, float] = (4, 60)
    axis_sd: float = 0.15
    wobble_sd: float = 0.15
    angle_sd_deg: float = 40
    necrosis_min_radius_mm: float = 18
    necrosis_probability: float = 0.6
    necrosis_fraction: float = 0.55
    placement_tries: int = 200
    inside_fraction: float = 0.85
    below_diaphragm_mm: float = 15


@dataclass(frozen=True)
class Gallbladder:
    present_probability: float = 0.9        # absent after cholecystectomy
    above_liver_bottom_mm: float = 25
    height_sd_mm: float = 8
    cavity: tuple[float, float] = (0.35, 0.78)
    shift_sd_mm: float = 8
    radii_mm: Vec = (15, 16, 34)
    size_sd: float = 0.15
    axis_sd: float = 0.12
    angle_sd_deg: float = 15
    direction: Vec = (-0.2, 0.6, -0.8)
    wobble_sd: float = 0.08
    bend_sd: float = 0.2
    taper: float = 0.3


@dataclass(frozen=True)
class Kidney:
    """Kidneys (left higher), with sinus fat and pelvis; adrenals above them."""

    right_lower_mm: float = 12
    height_sd_mm: float = 10
    offset_x_mm: float = 57
    offset_x_sd_mm: float = 5
    offset_y_mm: float = 14
    offset_y_sd_mm: float = 5
    radii_mm: Vec = (27, 21, 52)
    size_sd: float = 0.1
    axis_sd: float = 0.07
    angle_sd_deg: float = 6
    rotation_deg: Vec = (-15, 12, 30)       # y, z angles mirrored by side
    wobble_sd: float = 0.05
    bend_sd: float = 0.08
    hilum_offset_mm: tuple[float, float] = (20, 10)   # medial, anterior
    sinus_radii_mm: Vec = (12, 11, 24)      # scaled with the kidney
    pelvis_offset_mm: Vec = (4, 2, -5)      # x medial
    pelvis_radii_mm: Vec = (7, 6, 10)
    medulla_fraction: float = 0.72
    adrenal_above_mm: float = 48
    adrenal_height_sd_mm: float = 5
    adrenal_offset_x_mm: float = 30
    adrenal_offset_x_sd_mm: float = 3
    adrenal_offset_y_mm: float = 20
    adrenal_offset_y_sd_mm: float = 4
    adrenal_limb_step_mm: float = 4
    adrenal_limb_drop_mm: float = 8
    adrenal_radii_mm: Vec = (3.5, 11, 17)
    adrenal_size_sd: float = 0.15
    adrenal_angle_sd_deg: float = 8
    adrenal_limb_tilt_deg: float = 25
    adrenal_turn_deg: float = 35
    adrenal_wobble_sd: float = 0.05


@dataclass(frozen=True)
class Spleen:
    size_log_sd: float = 0.25
    below_left_dome_mm: float = 62
    height_sd_mm: float = 8
    lateral_fraction: float = 0.8           # of the cavity half-width, to the left
    offset_x_sd_mm: float = 5
    offset_y_mm: float = 14
    offset_y_sd_mm: float = 6
    radii_mm: Vec = (22, 50, 48)
    size_exponents: Vec = (0.7, 1, 1)
    axis_sd: float = 0.2
    angle_sd_deg: float = 18
    tilt_sd_deg: float = 8
    turn_deg: float = -35
    turn_sd_deg: float = 10
    wobble_sd: float = 0.15
    bend_sd: float = 0.45
    taper_sd: float = 0.2
    below_diaphragm_mm: float = 4


@dataclass(frozen=True)
class Pancreas:
    """Head in the duodenal C-loop, body over the spine, tail to the splenic hilum; lobulation; tumour."""

    height_sd_mm: float = 8                  # of the level: L1 + normal
    # centreline: cavity points (dz from the pancreas level, fx, fy), head to tail, then the tail end
    path: tuple[tuple[float, float, float], ...] = ((-35, 0.27, 0.55), (-12, 0.18, 0.62), (0, 0, 0.68),
                                                    (8, -0.3, 0.58), (18, -0.5, 0.4))
    head_shift_sd_mm: float = 5
    body_shift_sd_mm: float = 6
    tail_from_spleen_mm: Vec = (22, 18, -10)
    tail_sd_mm: tuple[float, float] = (5, 8)
    radii_mm: tuple[float, ...] = (20, 16, 12, 13, 12, 10)
    size_log_sd: float = 0.15
    radius_log_sd: float = 0.12
    lumps: int = 8
    lump_radii_mm: Vec = (7, 7, 7)
    lump_size_sd: float = 0.3
    lump_wobble_sd: float = 0.1
    tumour_head_probability: float = 0.6     # in the first two thirds of the gland
    tumour_median_radius_mm: float = 13
    tumour_radius_log_sd: float = 0.35
    tumour_radius_range_mm: tuple[float, float] = (6, 30)
    tumour_shift_sd_mm: float = 4
    tumour_axis_sd: float = 0.15
    tumour_wobble_sd: float = 0.15
    tumour_angle_sd_deg: float = 40


@dataclass(frozen=True)
class Stomach:
    """J-shaped: fundus under the left dome, antrum across to the pylorus; air above a fluid level."""

    size_log_sd: float = 0.25
    fundus: tuple[float, float, float] = (-30, -0.5, 0.4)     # cavity point below the left dome
    body: tuple[float, float, float] = (-65, -0.62, 0.65)     # below the left dome
    antrum: tuple[tuple[str, float, float, float], ...] = (("L1", -5, -0.5, 0.78), ("L2", -5, -0.15, 0.8),
                                                           ("L1", 0, 0.15, 0.65))   # last: the pylorus
    shift_sd_mm: float = 6
    radii_mm: tuple[float, ...] = (36, 34, 28, 20, 12)
    air_level_mm: tuple[float, float] = (-10, 20)             # anterior of the fundus centre
    wall_mm: float = 5


@dataclass(frozen=True)
class Duodenum:
    """C-loop around the pancreatic head, from the pylorus."""

    first_mm: Vec = (22, -15, 0)                              # from the pylorus
    # cavity points (landmark, dz, fx, fy): "pancreas" is the pancreas level
    path: tuple[tuple[str, float, float, float], ...] = (("pancreas", -20, 0.42, 0.48), ("L3", 0, 0.4, 0.45),
                                                         ("L3", -10, 0.08, 0.5), ("L3", 0, -0.2, 0.52),
                                                         ("L2", 0, -0.26, 0.58))
    shift_sd_mm: float = 4
    radii_mm: tuple[float, ...] = (12, 14, 14, 13, 12, 12, 11)
    size_log_sd: float = 0.15
    wall_mm: float = 3.5


@dataclass(frozen=True)
class Pelvis:
    """Bladder, prostate (zones and stroma), uterus."""

    bladder_filling_log_sd: float = 0.3
    bladder_filling_log_range: tuple[float, float] = (-0.6, 0.6)
    pubis_in_front_of_spine_mm: float = 118                   # x width scale, at the femoral heads
    bladder_x_sd_mm: float = 5
    bladder_behind_pubis_mm: float = 42                       # + per_filling x filling
    bladder_behind_per_filling_mm: float = 12
    bladder_above_heads_mm: float = 15
    bladder_rise_per_filling_mm: float = 22
    bladder_radii_mm: Vec = (38, 30, 30)                      # x filling
    bladder_axis_sd: float = 0.12
    bladder_angle_sd_deg: float = 10
    bladder_wobble_sd: float = 0.07
    bladder_taper: tuple[float, float] = (-0.15, 0.1)         # (mean, sd)
    bladder_wall_fraction: float = 0.9                        # urine inside this fraction
    prostate_size_log_sd: float = 0.2
    prostate_growth_per_year: float = 0.006                   # above prostate_growth_from_age
    prostate_growth_from_age: float = 45
    prostate_x_sd_mm: float = 2
    prostate_behind_pubis_mm: float = 40
    prostate_y_sd_mm: float = 4
    prostate_below_heads_mm: float = 22
    prostate_z_sd_mm: float = 5
    prostate_radii_mm: Vec = (24, 17, 20)                     # x growth ** prostate_radius_exponent
    prostate_radius_exponent: float = 0.6
    prostate_size_sd: float = 0.05
    prostate_axis_sd: float = 0.12
    prostate_angle_sd_deg: float = 8
    prostate_tilt_deg: float = -20
    prostate_wobble_sd: float = 0.06
    tz_share: float = 0.68                                    # transition zone / gland, + growth
    tz_share_per_growth: float = 0.3
    tz_share_sd: float = 0.12
    tz_share_range: tuple[float, float] = (0.45, 0.9)
    tz_forward_mm: float = 2                                  # + tz_forward_per_share x share
    tz_forward_per_share_mm: float = 3
    tz_up_mm: float = 2
    tz_shift_sd_mm: float = 1.5
    tz_widening: float = 1.1                                  # x and z radii x share x this
    tz_size_sd: float = 0.05
    tz_axis_sd: float = 0.15
    tz_angle_sd_deg: float = 15
    tz_wobble_sd: float = 0.12
    stroma_forward: float = 0.92                              # of the gland's y radius
    stroma_radii: Vec = (0.5, 0.15, 0.7)                      # of the gland's radii
    uterus_x_sd_mm: float = 10
    uterus_from_bladder_mm: tuple[float, float] = (-30, 45)   # (dy, dz)
    uterus_radii_mm: Vec = (35, 25, 45)
    uterus_size_sd: float = 0.2
    uterus_angle_sd_deg: float = 20
    uterus_tilt_deg: float = 50
    uterus_wobble_sd: float = 0.06


@dataclass(frozen=True)
class Vessels:
    """Aorta, iliac vessels, venae cavae, portal system, mesenteric and renal vessels."""

    aorta_radius_mm: float = 14                # + per_age x (age - 20) / 70
    aorta_radius_per_age_mm: float = 4
    aorta_radius_sd_mm: float = 1.5
    aortic_root_above_heart_mm: float = 30
    aortic_root_offset: tuple[float, float] = (8, 75)
    aorta_shift_sd_mm: float = 3
    ascending_mm: Vec = (2, -5, 35)            # from the root
    # spine points (landmark, dz, dx, dy): arch to the bifurcation ("T4" the arch level)
    aorta_path: tuple[tuple[str, float, float, float], ...] = (
        ("T4", 8, 5, 55), ("T4", 15, -12, 30), ("T4", -5, -25, 12), ("T8", 0, -22, 20), ("T12", 0, -12, 28),
        ("L2", 0, -8, 32), ("L4", -5, -4, 30))
    aorta_radius_factors: tuple[float, ...] = (1.15, 1.15, 1.0, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)
    femoral_x_mm: float = 88                   # x width scale
    female_femoral_x: float = 1.06
    femoral_in_front_of_spine_mm: float = 62
    iliac_artery_l5: tuple[float, float] = (28, 28)                  # spine point at L5
    iliac_artery_mid: tuple[float, float, float] = (-30, 35, 25)     # from (femoral x, y, heads)
    iliac_artery_end: tuple[float, float, float] = (-22, 35, -40)
    iliac_artery_radius_factor: float = 0.45                         # of the aorta's
    iliac_artery_radii_mm: Vec = (6.5, 5.5, 5)
    iliac_vein_start: tuple[float, float, float] = (-10, 12, 22)     # (dz below L5, dx, dy)
    iliac_vein_l5: tuple[float, float, float] = (-30, 30, 18)
    iliac_vein_mid: tuple[float, float, float] = (-38, 28, 25)
    iliac_vein_end: tuple[float, float, float] = (-32, 30, -40)
    iliac_vein_radii_mm: tuple[float, ...] = (9, 8, 7.5, 7)
    ivc_radius_mm: float = 11
    ivc_radius_sd_mm: float = 1.5
    ivc_path: tuple[tuple[str, float, float, float], ...] = (
        ("L5", -10, 14, 22), ("L2", 0, 22, 30), ("T12", 0, 25, 40), ("dia_r", -20, 22, 40), ("heart", -15, 20, 60))
    ivc_radius_factors: tuple[float, ...] = (1, 1, 1.1, 1.2, 1.3)
    svc_path: tuple[tuple[str, float, float, float], ...] = (
        ("top", 10, 28, 55), ("T4", 0, 30, 58), ("heart", 25, 28, 62))
    svc_radii_mm: Vec = (9, 9.5, 10)
    portal_confluence_mm: Vec = (0, -14, 0)   # behind the pancreatic neck
    portal_bend_mm: Vec = (18, -5, 20)
    portal_radii_mm: Vec = (7.5, 7.5, 7)
    splenic_behind_pancreas_mm: Vec = (0, -14, 2)
    splenic_radii_mm: tuple[float, ...] = (6, 5, 4.5, 4.5)
    smv_path_mm: tuple[Vec, Vec] = ((3, 5, -45), (5, 10, -90))
    smv_radii_mm: Vec = (6, 5, 4)
    sma_path: tuple[tuple[str, float, float], ...] = (("L1", -6, 36), ("L2", -2, 60), ("L4", 0, 70))
    sma_radii_mm: Vec = (4, 3.5, 3)
    renal_artery_origin: Vec = (5, -6, 32)     # (dz above the kidney, dx, dy)
    renal_artery_end_x_mm: float = 40
    renal_artery_end_y_mm: float = 20
    renal_artery_radius_mm: float = 3.5
    renal_vein_origin_x_mm: tuple[float, float] = (18, 0)   # right, left
    renal_vein_origin_y_mm: float = 38
    renal_vein_end: Vec = (-3, 40, 22)
    renal_vein_radius_mm: float = 4.5


@dataclass(frozen=True)
class Airways:
    """Trachea, main bronchi and oesophagus."""

    carina_above_t5_sd_mm: float = 8
    trachea_radius_mm: float = 9.5
    trachea_radius_sd_mm: float = 1
    trachea_top_above_top_mm: float = 20
    trachea_y_mm: Vec = (52, 48, 40)          # in front of the spine at the top, T2, the carina
    bronchus_path: tuple[Vec, Vec] = ((-20, 35, 35), (-45, 55, 30))   # (dz, dx, dy) from the carina level
    bronchus_radii_mm: Vec = (7.5, 6, 4)
    trachea_wall_mm: float = 2.0
    bronchus_wall_mm: float = 1.8
    esophagus_radius_mm: float = 9
    esophagus_radius_sd_mm: float = 1
    esophagus_path: tuple[tuple[str, float, float, float], ...] = (
        ("top", 20, -4, 28), ("T4", 0, -6, 24), ("T8", 0, -8, 26), ("dia_l", -5, -22, 36))
    esophagus_to_fundus_mm: Vec = (18, 0, -5)
    esophagus_radius_factors: tuple[float, ...] = (1, 1, 1, 0.9, 1)
    esophagus_air_probability: float = 0.4
    esophagus_lumen_mm: float = 6.5


@dataclass(frozen=True)
class Bowel:
    """Colon (with stool, air and an optional annular tumour) and the small-bowel package."""

    # colon centreline: cavity points (landmark, dz, fx, fy) from the caecum round to the sigmoid ...
    colon_path: tuple[tuple[str, float, float, float], ...] = (
        ("L5", -25, 0.65, 0.45), ("L3", 0, 0.72, 0.3), ("L1", -5, 0.6, 0.6))
    transverse_dz_sd_mm: float = 15           # the transverse colon sags around L3
    transverse: tuple[float, float] = (0, 0.85)
    descending: tuple[tuple[str, float, float, float], ...] = (
        ("T12", 0, -0.65, 0.5), ("L2", 0, -0.75, 0.25), ("L5", 0, -0.7, 0.35))
    # ... then the sigmoid (x, y behind the pubis, z above the femoral heads) and the rectum (spine points)
    sigmoid_mm: tuple[Vec, Vec] = ((-45, -55, 35), (0, -80, 45))
    rectum: tuple[Vec, Vec] = ((10, 0, 30), (-40, 0, 55))     # (dz from the heads, dx, dy)
    shift_sd_mm: float = 7
    radii_mm: tuple[float, ...] = (28, 24, 22, 21, 20, 17, 16, 15, 15, 18, 17)
    size_log_sd: float = 0.15
    wall_mm: float = 3.0
    mottle_scale_mm: float = 4.0
    air_threshold: float = 0.3
    tumour_first_point: int = 3               # tumour start: a centreline point >= this and < n - 4
    tumour_last_margin: int = 4
    tumour_length_mm: tuple[float, float] = (15, 45)
    tumour_radius_factor: tuple[float, float] = (0.6, 0.95)
    small_bowel_cavity: tuple[float, float] = (0.05, 0.6)     # at L4
    small_bowel_shift_sd_mm: tuple[float, float] = (10, 8)
    small_bowel_radii: tuple[float, float, float] = (0.7, 0.6, 85)   # cavity half-width, half-depth, mm
    small_bowel_size_sd: float = 0.1
    small_bowel_axis_sd: float = 0.08
    small_bowel_wobble_sd: float = 0.1
    loop_scale_mm: float = 9.0
    loop_threshold: float = -0.35
    fluid_threshold: float = 0.25
    air_in_loops_threshold: float = 1.6


@dataclass(frozen=True)
class Muscles:
    """Iliopsoas (with iliacus), autochthonous back muscles, gluteus maximus; sizes x muscle scale."""

    psoas_spine: tuple[tuple[str, float, float], ...] = (("T12", 25, 2), ("L3", 42, 5), ("L5", 52, 18))
    psoas_pelvis: tuple[Vec, ...] = ((68, 95, 25), (72, 85, -30), (78, 70, -70))   # (x, y from spine, z from heads)
    psoas_radii_mm: tuple[float, ...] = (8, 17, 22, 20, 17, 12)
    iliacus_centre: Vec = (72, 30, -25)      # (x, y from the spine at L5, z from L5)
    iliacus_radii_mm: Vec = (18, 30, 45)     # x radius x muscle scale
    iliacus_angle_sd_deg: float = 5
    iliacus_turn_deg: float = 30
    iliacus_wobble_sd: float = 0.05
    back_columns_mm: tuple[float, ...] = (18, 32, 46)        # lateral offsets of three columns
    back_depth_mm: float = -44                                # behind the spine, x muscle scale, ...
    back_depth_extra_mm: float = -4                           # ... + this + share x column offset
    back_depth_per_offset: float = 0.2
    back_levels: tuple[str, ...] = ("top", "T6", "T10", "L2", "L5")
    back_bottom_z_mm: float = -45
    back_radii_mm: tuple[float, ...] = (11, 13, 15, 20, 18, 10)
    gluteus_centre: Vec = (78, -38, -10)     # (x, y from the spine, z from the heads)
    gluteus_radii_mm: Vec = (42, 30, 85)     # x, y x muscle scale
    gluteus_size_sd: float = 0.06
    gluteus_angle_sd_deg: float = 6
    gluteus_tilt_deg: float = 28
    gluteus_wobble_sd: float = 0.06


@dataclass(frozen=True)
class Vertebra:
    """Vertebral bodies and posterior elements, discs, canal and cord, sacrum."""

    lumbar_radii_mm: tuple[float, float] = (23, 17)      # (x, y) x width scale
    thoracic_rx_mm: float = 15                            # + thoracic_rx_per_level x (12 - level)
    thoracic_rx_per_level_mm: float = 0.4
    thoracic_ry_mm: float = 13
    tilt_span_mm: float = 5                               # body tilt from the centreline slope over +-this
    wobble_sd: float = 0.02
    canal_behind_body_mm: float = 10
    lumbar_spinous_drop_mm: float = -5
    thoracic_spinous_drop_mm: float = -18
    pedicle_lateral: float = 0.55                         # of the body's x radius
    pedicle_back_mm: float = 3                            # in front of the body's back
    lamina_mm: tuple[tuple[float, float], ...] = ((11, -2), (8, -14), (0, -18))   # (dx, dy) from the canal
    lamina_radius_mm: float = 4.5
    spinous_path_mm: tuple[float, float, float] = (-16, -32, -44)
    spinous_drop_shares: tuple[float, float, float] = (0, 0.6, 1)
    spinous_radii_mm: Vec = (5, 4.5, 4)
    transverse_start_mm: tuple[float, float] = (10, -5)
    lumbar_transverse_span_mm: float = 40
    thoracic_transverse_span_mm: float = 28
    lumbar_transverse_back_mm: float = -8
    thoracic_transverse_back_mm: float = -14
    transverse_rise_mm: float = 2
    transverse_radii_mm: tuple[float, float] = (4.5, 3.5)
    disc_bottom_mm: float = -5
    disc_top_above_mm: float = 20
    lumbar_disc_radius_mm: float = 16.0                   # x width scale
    thoracic_disc_radius_mm: float = 13.0
    canal_bottom_mm: float = -40
    canal_top_above_mm: float = 30
    canal_behind_mm: float = 10                           # behind the bodies' back (lumbar 17, thoracic 13 mm)
    lumbar_body_depth_mm: float = 17
    thoracic_body_depth_mm: float = 13
    canal_radius_mm: float = 9.0
    cord_end_sd_mm: float = 8                             # conus at L1 + normal
    cord_radius_mm: float = 4.5
    cord_radius_sd_mm: float = 0.4
    sacrum_centre: Vec = (0, -28, -55)                    # (dx, dy) spine point at z
    sacrum_radii_mm: Vec = (48, 16, 55)                   # x radius x width scale
    sacrum_tilt_deg: float = -25
    sacrum_tilt_sd_deg: float = 5
    sacrum_bend: tuple[float, float] = (0, -0.25)
    sacrum_wobble_sd: float = 0.03
    sacrum_taper: float = 0.5


@dataclass(frozen=True)
class HipBone:
    """Hip bones (wing, acetabulum, body, pubic and ischial rami) and femurs."""

    wing_centre: Vec = (78, 5, -30)           # (x x width scale, y from the spine at L5, z from L5)
    wing_radii_mm: Vec = (7, 58, 48)
    wing_size_sd: float = 0.05
    wing_axis_sd: float = 0.05
    wing_angle_sd_deg: float = 4
    wing_rotation_deg: tuple[float, float] = (-10, -40)   # about y, z (x side)
    wing_bend: float = 0.3
    wing_wobble_sd: float = 0.03
    acetabulum_medial_mm: float = 4
    acetabulum_radius_mm: float = 30
    body_top: Vec = (70, 10, -60)             # (x x width scale, y from the spine at L5, z from L5)
    body_bottom: Vec = (-10, -10, 25)         # from (femoral x, y, heads)
    body_radii_mm: tuple[float, float] = (14, 18)
    pubic_path: tuple[Vec, Vec] = ((-15, 15, 0), (45, 45, -5))      # from the head; 2nd: x absolute
    pubic_symphysis: tuple[float, float, float] = (6, -12, -15)     # (x, y from the pubis, z from the heads)
    pubic_radii_mm: Vec = (11, 9, 10)
    ischial_path: tuple[Vec, ...] = ((-15, -15, -15), (55, -35, -55), (40, 5, -65), (20, 40, -35))
    ischial_radii_mm: tuple[float, ...] = (14, 13, 8, 7)
    head_radius_mm: float = 23                # x height scale
    head_radius_sd_mm: float = 1
    joint_space: float = 1.12                 # of the head's radius
    neck_end_mm: Vec = (38, -12, -28)         # from the head
    neck_radii_mm: tuple[float, float] = (15, 16)
    trochanter_mm: Vec = (6, -4, 8)
    trochanter_radii_mm: Vec = (18, 18, 24)
    shaft_path_mm: tuple[Vec, ...] = ((0, 0, -10), (-8, 10, -250), (-12, 12, -450))
    shaft_radii_mm: Vec = (16, 14, 13)


@dataclass(frozen=True)
class Ribcage:
    """Ribs, costal cartilages, sternum with manubrium, clavicles."""

    above_vertebra_mm: float = 8
    sweep: tuple[float, ...] = (0.82, 0.9, 0.9, 0.9, 0.88, 0.86, 0.84, 0.78, 0.74, 0.7, 0.55, 0.4)  # x pi
    start_angle: float = 0.12                 # x pi
    drop_mm: float = 35                       # + drop_per_rib x min(k, 8), x height scale
    drop_per_rib_mm: float = 9
    drop_power: float = 1.4
    drop_sd_mm: float = 2
    radius_mm: tuple[float, float] = (7, 5.5)  # first rib, others; x sqrt(width scale)
    points: int = 16
    outside_cavity_mm: float = 6
    upper_shrink: tuple[float, float] = (0.6, 0.2)   # ribs 1-2: 0.6 + 0.2 (k - 1) of the cavity
    upper_depth: float = 0.85                 # ribs 1-2 reach this share of the depth
    head_from_spine: tuple[float, float] = (20, -14)
    true_ribs: int = 7                        # costal cartilage to the sternum; 8-10 to the rib above
    cartilage_ribs: int = 10
    cartilage_to_sternum_x_mm: float = 12
    cartilage_rise_mm: float = 15
    cartilage_front_mm: float = 2
    cartilage_bow_mm: float = 6
    cartilage_to_rib_above_mm: tuple[float, float] = (-6, 10)
    cartilage_radius_mm: float = 5
    sternum_top_above_t2_mm: float = 10        # sternal angle level; the body ends at T9
    sternum_top_rise_mm: float = 15
    sternum_front_mm: tuple[float, float] = (3, 4)
    sternum_radii_mm: tuple[float, float] = (9, 7)
    manubrium_below_mm: float = 12
    manubrium_radii_mm: Vec = (26, 8, 22)
    manubrium_wobble_sd: float = 0.03
    clavicle_start_mm: tuple[float, float] = (18, 8)   # (dx, dz) from the sternum's top
    clavicle_path_mm: tuple[Vec, ...] = ((55, 8, 12), (110, -35, 20), (140, -80, 30))
    clavicle_radius_mm: float = 7


@dataclass(frozen=True)
class LungTumour:
    right_probability: float = 0.55
    above_right_dome_mm: float = 25           # z uniform from the dome (+ this) to T2
    offset_x_mm: tuple[float, float] = (35, 95)   # x width scale
    depth_fraction: tuple[float, float] = (-0.6, 0.6)   # of the cavity half-depth
    median_radius_mm: float = 14
    radius_log_sd: float = 0.5
    radius_range_mm: tuple[float, float] = (5, 45)
    axis_sd: float = 0.15
    angle_sd_deg: float = 40
    wobble_sd: float = 0.18


HABITUS = Habitus()
SPINE = Spine()
DIAPHRAGM = Diaphragm()
BODY = Body()
THIGH = Thigh()
LUNGS = Lungs()
HEART = Heart()
LIVER = Liver()
VESSEL_TREE = VesselTree()
LIVER_TUMOUR = LiverTumour()
GALLBLADDER = Gallbladder()
KIDNEY = Kidney()
SPLEEN = Spleen()
PANCREAS = Pancreas()
STOMACH = Stomach()
DUODENUM = Duodenum()
PELVIS = Pelvis()
VESSELS = Vessels()
AIRWAYS = Airways()
BOWEL = Bowel()
MUSCLES = Muscles()
VERTEBRA = Vertebra()
HIP = HipBone()
RIBCAGE = Ribcage()
LUNG_TUMOUR = LungTumour()
