//! Paints egui's triangles into a pixel buffer on the CPU, the way egui's OpenGL painter does
//! on a GPU: each pixel's colour is the vertex colour times the texture sample, both
//! premultiplied sRGBA and multiplied in gamma space, blended "source over" (one, one minus
//! source alpha). Triangles sharing an edge paint each pixel on it once.

use std::collections::HashMap;

use eframe::egui::epaint::textures::{TextureFilter, TexturesDelta};
use eframe::egui::epaint::{
    ClippedPrimitive, ImageData, ImageDelta, Mesh, Primitive, TextureId, Vertex,
};
use eframe::egui::{Color32, Rect};

/// A frame being painted: one `0x00RRGGBB` word per pixel, row by row (softbuffer's format).
pub struct Target<'a> {
    /// `width * height` pixels.
    pub pixels: &'a mut [u32],
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

/// The textures egui has uploaded (the font atlas, and any images), kept for sampling.
#[derive(Default)]
pub struct Painter {
    textures: HashMap<TextureId, Texture>,
}

struct Texture {
    width: usize,
    height: usize,
    texels: Vec<Color32>,
    /// Bilinear sampling when magnified (egui's default); nearest texel otherwise.
    linear: bool,
}

impl Painter {
    /// Applies (and takes out of `delta`) new and changed textures; call before
    /// [`Painter::paint`].
    pub fn set_textures(&mut self, delta: &mut TexturesDelta) {
        for (id, changes) in std::mem::take(&mut delta.set) {
            for change in &changes {
                self.set_texture(id, change);
            }
        }
    }

    /// Drops (and takes out of `delta`) the textures egui no longer needs; call after
    /// [`Painter::paint`].
    pub fn free_textures(&mut self, delta: &mut TexturesDelta) {
        for id in std::mem::take(&mut delta.free) {
            self.textures.remove(&id);
        }
    }

    fn set_texture(&mut self, id: TextureId, change: &ImageDelta) {
        let ImageData::Color(image) = &change.image;
        let [width, height] = image.size;
        match change.pos {
            None => {
                self.textures.insert(
                    id,
                    Texture {
                        width,
                        height,
                        texels: image.pixels.clone(),
                        linear: change.options.magnification == TextureFilter::Linear,
                    },
                );
            }
            Some([left, top]) => {
                // A patch (the font atlas gaining glyphs): copy the rows that land inside.
                let Some(texture) = self.textures.get_mut(&id) else {
                    return;
                };
                if left >= texture.width || top >= texture.height {
                    return;
                }
                let columns = width.min(texture.width.saturating_sub(left));
                for row in 0..height.min(texture.height.saturating_sub(top)) {
                    let to = (top + row) * texture.width + left;
                    let from = row * width;
                    texture.texels[to..to + columns]
                        .copy_from_slice(&image.pixels[from..from + columns]);
                }
            }
        }
    }

    /// Paints a frame: the background, then every primitive in order, each inside its clip
    /// rectangle. `pixels_per_point` maps egui's points to the target's pixels.
    pub fn paint(
        &self,
        target: &mut Target<'_>,
        primitives: &[ClippedPrimitive],
        pixels_per_point: f32,
        background: Color32,
    ) {
        if target.pixels.len() < target.width * target.height {
            return;
        }
        target.pixels.fill(pack(background.to_array()));
        for primitive in primitives {
            let clip = ClipBox::new(primitive.clip_rect, pixels_per_point, target);
            if clip.is_empty() {
                continue;
            }
            match &primitive.primitive {
                Primitive::Mesh(mesh) => {
                    if let Some(texture) = self.textures.get(&mesh.texture_id) {
                        paint_mesh(target, &clip, mesh, texture, pixels_per_point);
                    }
                }
                // Custom GPU callbacks need a GPU; the app paints none.
                Primitive::Callback(_) => {}
            }
        }
    }
}

/// The pixels a primitive may touch: `x0..x1` by `y0..y1`.
struct ClipBox {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl ClipBox {
    fn new(rect: Rect, pixels_per_point: f32, target: &Target<'_>) -> ClipBox {
        let to_pixel = |points: f32, limit: usize| {
            (points * pixels_per_point).round().clamp(0.0, limit as f32) as usize
        };
        ClipBox {
            x0: to_pixel(rect.min.x, target.width),
            y0: to_pixel(rect.min.y, target.height),
            x1: to_pixel(rect.max.x, target.width),
            y1: to_pixel(rect.max.y, target.height),
        }
    }

    fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }
}

/// A triangle corner in pixels, with its texture position in texels and colour in 0..=255.
#[derive(Clone, Copy)]
struct Corner {
    x: f32,
    y: f32,
    u: f32,
    v: f32,
    color: [f32; 4],
}

impl Corner {
    fn new(vertex: &Vertex, pixels_per_point: f32, texture: &Texture) -> Corner {
        let [r, g, b, a] = vertex.color.to_array();
        Corner {
            x: vertex.pos.x * pixels_per_point,
            y: vertex.pos.y * pixels_per_point,
            u: vertex.uv.x * texture.width as f32,
            v: vertex.uv.y * texture.height as f32,
            color: [r as f32, g as f32, b as f32, a as f32],
        }
    }
}

fn paint_mesh(
    target: &mut Target<'_>,
    clip: &ClipBox,
    mesh: &Mesh,
    texture: &Texture,
    pixels_per_point: f32,
) {
    if texture.texels.is_empty() {
        return;
    }
    let corner = |index: u32| {
        mesh.vertices
            .get(index as usize)
            .map(|vertex| Corner::new(vertex, pixels_per_point, texture))
    };
    let mut rest = mesh.indices.as_slice();
    while rest.len() >= 3 {
        // Text is one rectangle per glyph: painted row by row with no edge tests.
        if let Some(quad) = rest
            .get(..6)
            .and_then(|six| Rectangle::from_quad(six, corner))
        {
            quad.fill(target, clip, texture);
            rest = &rest[6..];
            continue;
        }
        if let (Some(a), Some(b), Some(c)) = (corner(rest[0]), corner(rest[1]), corner(rest[2])) {
            fill_triangle(target, clip, [a, b, c], texture);
        }
        rest = &rest[3..];
    }
}

/// An axis-aligned rectangle of one colour, as egui's `Mesh::add_rect_with_uv` makes it:
/// corners left-top, right-top, left-bottom, right-bottom; triangles 0 1 2 and 2 1 3.
struct Rectangle {
    corners: [Corner; 4],
}

impl Rectangle {
    fn from_quad(indices: &[u32], corner: impl Fn(u32) -> Option<Corner>) -> Option<Rectangle> {
        let first = indices[0];
        let expected = [0, 1, 2, 2, 1, 3].map(|offset| first.checked_add(offset));
        if indices.iter().zip(expected).any(|(&i, e)| Some(i) != e) {
            return None;
        }
        let [lt, rt, lb, rb] = [0, 1, 2, 3].map(|offset| corner(first + offset));
        let corners = [lt?, rt?, lb?, rb?];
        let [lt, rt, lb, rb] = &corners;
        let aligned = lt.y == rt.y && lb.y == rb.y && lt.x == lb.x && rt.x == rb.x;
        let mapped = lt.v == rt.v && lb.v == rb.v && lt.u == lb.u && rt.u == rb.u;
        let one_colour = corners.iter().all(|c| c.color == lt.color);
        (aligned && mapped && one_colour).then_some(Rectangle { corners })
    }

    /// Paints the pixels whose centres fall inside (left and top edges included).
    fn fill(&self, target: &mut Target<'_>, clip: &ClipBox, tex: &Texture) {
        let [lt, rt, lb, _] = &self.corners;
        // The pixels from the first centre at or after `from` up to (excluding) `to`.
        let span = |from: f32, to: f32, low: usize, high: usize| {
            let (from, to) = (from.min(to), from.max(to));
            let first = (from - 0.5).ceil().max(low as f32) as usize;
            let end = ((to - 0.5).ceil().max(0.0) as usize).min(high);
            first..end.max(first)
        };
        let columns = span(lt.x, rt.x, clip.x0, clip.x1);
        let rows = span(lt.y, lb.y, clip.y0, clip.y1);
        if columns.is_empty() || rows.is_empty() || lt.x == rt.x || lt.y == lb.y {
            return;
        }
        let du = (rt.u - lt.u) / (rt.x - lt.x);
        let dv = (lb.v - lt.v) / (lb.y - lt.y);
        let vary_texture = du != 0.0 || dv != 0.0;
        let flat = to_bytes(shade(lt.color, tex.sample(lt.u, lt.v)));
        for y in rows {
            let v = lt.v + (y as f32 + 0.5 - lt.y) * dv;
            let row = &mut target.pixels[y * target.width..(y + 1) * target.width];
            let run = &mut row[columns.clone()];
            if !vary_texture {
                fill_run(run, flat);
                continue;
            }
            let mut u = lt.u + (columns.start as f32 + 0.5 - lt.x) * du;
            for pixel in run {
                *pixel = blend(*pixel, to_bytes(shade(lt.color, tex.sample(u, v))));
                u += du;
            }
        }
    }
}

/// Paints a run of pixels one colour.
fn fill_run(run: &mut [u32], color: [u8; 4]) {
    if color[3] == 255 {
        run.fill(pack(color));
    } else if color != [0; 4] {
        run.iter_mut()
            .for_each(|pixel| *pixel = blend(*pixel, color));
    }
}

/// One edge's test: `at(px, py) >= 0` on the inside. A pixel exactly on the edge belongs to
/// one of the two triangles sharing it, chosen by the edge's direction.
struct Edge {
    /// The edge measured from its upper (then leftmost) end whichever way it runs, so the two
    /// triangles sharing it compute exactly opposite values and never both claim a pixel.
    x: f32,
    y: f32,
    dx: f32,
    dy: f32,
    /// +1 when the edge runs from its upper end, −1 when it runs towards it.
    sign: f32,
    owns_ties: bool,
}

impl Edge {
    fn new(from: &Corner, to: &Corner) -> Edge {
        let downward = (from.y, from.x) <= (to.y, to.x);
        let (top, bottom) = if downward { (from, to) } else { (to, from) };
        let (dx, dy) = (to.x - from.x, to.y - from.y);
        Edge {
            x: top.x,
            y: top.y,
            dx: bottom.x - top.x,
            dy: bottom.y - top.y,
            sign: if downward { 1.0 } else { -1.0 },
            owns_ties: dy > 0.0 || (dy == 0.0 && dx > 0.0),
        }
    }

    fn at(&self, px: f32, py: f32) -> f32 {
        self.sign * (self.dx * (py - self.y) - self.dy * (px - self.x))
    }

    fn covers(&self, value: f32) -> bool {
        value > 0.0 || (value == 0.0 && self.owns_ties)
    }

    /// Narrows `lo..hi` (pixel-centre x) to where this edge can cover row `py`.
    fn narrow(&self, py: f32, lo: &mut f32, hi: &mut f32) {
        // at(px) = sign * (intercept - dy * px)
        let intercept = self.dx * (py - self.y) + self.dy * self.x;
        let slope = -self.sign * self.dy;
        if slope > 0.0 {
            *lo = lo.max(intercept / self.dy);
        } else if slope < 0.0 {
            *hi = hi.min(intercept / self.dy);
        } else if !self.covers(self.sign * intercept) {
            *hi = f32::NEG_INFINITY;
        }
    }
}

/// What varies across a triangle: most of egui's triangles (panels, frames, lines) are one
/// colour on the font atlas's white texel; text varies the texture; feathered edges the colour.
struct Shading {
    vary_color: bool,
    vary_texture: bool,
}

fn fill_triangle(target: &mut Target<'_>, clip: &ClipBox, corners: [Corner; 3], tex: &Texture) {
    let [a, mut b, mut c] = corners;
    let area = Edge::new(&a, &b).at(c.x, c.y);
    if area.is_nan() || area.abs() < 1e-6 {
        return;
    }
    if area < 0.0 {
        std::mem::swap(&mut b, &mut c);
    }
    let edges = [Edge::new(&b, &c), Edge::new(&c, &a), Edge::new(&a, &b)];
    let min_y = a.y.min(b.y).min(c.y).floor().max(clip.y0 as f32) as usize;
    let max_y = (a.y.max(b.y).max(c.y).ceil().max(0.0) as usize).min(clip.y1);
    let min_x = a.x.min(b.x).min(c.x).floor().max(clip.x0 as f32) as usize;
    let max_x = (a.x.max(b.x).max(c.x).ceil().max(0.0) as usize).min(clip.x1);
    let shading = Shading {
        vary_color: a.color != b.color || a.color != c.color,
        vary_texture: a.u != b.u || a.u != c.u || a.v != b.v || a.v != c.v,
    };
    let corner_texel = tex.sample(a.u, a.v);
    let flat = to_bytes(shade(a.color, corner_texel));
    if !shading.vary_color && !shading.vary_texture && flat == [0; 4] {
        return;
    }
    // Colour (4) and texture position (2) as planes over the triangle: value at corner `a`
    // plus a change per pixel across and down.
    let values = |corner: &Corner| {
        let [r, g, b, alpha] = corner.color;
        [r, g, b, alpha, corner.u, corner.v]
    };
    let (at_a, at_b, at_c) = (values(&a), values(&b), values(&c));
    let (bx, by, cx, cy) = (b.x - a.x, b.y - a.y, c.x - a.x, c.y - a.y);
    let determinant = bx * cy - cx * by;
    let across: [f32; 6] = std::array::from_fn(|i| {
        ((at_b[i] - at_a[i]) * cy - (at_c[i] - at_a[i]) * by) / determinant
    });
    let down: [f32; 6] = std::array::from_fn(|i| {
        ((at_c[i] - at_a[i]) * bx - (at_b[i] - at_a[i]) * cx) / determinant
    });
    let covered = |px: f32, py: f32| edges.iter().all(|edge| edge.covers(edge.at(px, py)));

    for y in min_y..max_y {
        let py = y as f32 + 0.5;
        let (mut lo, mut hi) = (min_x as f32, max_x as f32);
        for edge in &edges {
            edge.narrow(py, &mut lo, &mut hi);
        }
        if lo.is_nan() || hi.is_nan() || lo > hi {
            continue;
        }
        // A triangle covers one run of each row. Start a pixel wide of the computed run
        // each side and step in to the first covered pixels: exact at the ends, and no
        // per-pixel test in between.
        let mut start = ((lo - 0.5).floor() - 1.0).max(min_x as f32) as usize;
        let mut end = (((hi - 0.5).ceil() + 2.0).max(0.0) as usize).min(max_x);
        while start < end && !covered(start as f32 + 0.5, py) {
            start += 1;
        }
        while end > start && !covered(end as f32 - 0.5, py) {
            end -= 1;
        }
        let run = &mut target.pixels[y * target.width + start..y * target.width + end];
        if !shading.vary_color && !shading.vary_texture {
            fill_run(run, flat);
            continue;
        }
        let (px, py) = (start as f32 + 0.5 - a.x, py - a.y);
        let mut values: [f32; 6] = std::array::from_fn(|i| at_a[i] + across[i] * px + down[i] * py);
        for pixel in run.iter_mut() {
            let color = if shading.vary_color {
                [values[0], values[1], values[2], values[3]]
            } else {
                a.color
            };
            let texel = if shading.vary_texture {
                tex.sample(values[4], values[5])
            } else {
                corner_texel
            };
            *pixel = blend(*pixel, to_bytes(shade(color, texel)));
            for (value, step) in values.iter_mut().zip(across) {
                *value += step;
            }
        }
    }
}

impl Texture {
    /// The texel colour (0..=255 each) at texture position `u`, `v` in texels, clamped to the
    /// edge as egui's textures are.
    fn sample(&self, u: f32, v: f32) -> [f32; 4] {
        let texel = |x: usize, y: usize| self.texels[y * self.width + x].to_array().map(f32::from);
        let clamp = |value: f32, size: usize| (value.max(0.0) as usize).min(size - 1);
        let (x, y) = (u - 0.5, v - 0.5);
        let (x_floor, y_floor) = (floor(x), floor(y));
        let (fx, fy) = (x - x_floor, y - y_floor);
        // Nearest filtering, or a pixel on a texel centre (text is drawn texel for pixel).
        if !self.linear || (fx < 1e-3 && fy < 1e-3) {
            let (x, y) = if self.linear {
                (x_floor + 0.5, y_floor + 0.5)
            } else {
                (u, v)
            };
            return texel(clamp(x, self.width), clamp(y, self.height));
        }
        let (x0, y0) = (clamp(x_floor, self.width), clamp(y_floor, self.height));
        let (x1, y1) = (
            clamp(x_floor + 1.0, self.width),
            clamp(y_floor + 1.0, self.height),
        );
        let (t00, t10, t01, t11) = (texel(x0, y0), texel(x1, y0), texel(x0, y1), texel(x1, y1));
        std::array::from_fn(|i| {
            let top = t00[i] + (t10[i] - t00[i]) * fx;
            let bottom = t01[i] + (t11[i] - t01[i]) * fx;
            top + (bottom - top) * fy
        })
    }
}

/// `x.floor()` without a call into the maths library (x86-64's baseline has no rounding
/// instruction); texture positions stay far inside `i32`.
fn floor(x: f32) -> f32 {
    let truncated = x as i32 as f32;
    if truncated > x {
        truncated - 1.0
    } else {
        truncated
    }
}

/// Vertex colour times texture sample, both premultiplied, in gamma space (egui's shader).
fn shade(color: [f32; 4], texel: [f32; 4]) -> [f32; 4] {
    std::array::from_fn(|i| color[i] * texel[i] / 255.0)
}

/// Rounds to bytes (`as` saturates at 0 and 255, and is a single instruction, unlike `round`).
fn to_bytes(color: [f32; 4]) -> [u8; 4] {
    color.map(|channel| (channel + 0.5) as u8)
}

/// "Source over" for a premultiplied source on an opaque pixel.
fn blend(pixel: u32, source: [u8; 4]) -> u32 {
    let [r, g, b, alpha] = source;
    if alpha == 255 {
        return pack([r, g, b, 255]);
    }
    let keep = 255 - u32::from(alpha);
    let over = |source: u8, shift: u32| {
        let under = (pixel >> shift) & 0xFF;
        (u32::from(source) + (under * keep + 127) / 255).min(255)
    };
    (over(r, 16) << 16) | (over(g, 8) << 8) | over(b, 0)
}

fn pack([r, g, b, _]: [u8; 4]) -> u32 {
    (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eframe::egui::epaint::textures::TextureOptions;
    use eframe::egui::epaint::{ColorImage, ImageDelta};
    use eframe::egui::{Pos2, pos2, vec2};

    const WHITE_BACKGROUND: u32 = 0x00FF_FFFF;

    /// A painter holding egui's usual 1×1 white texture as the default texture.
    fn painter_with_white() -> Painter {
        painter_with(
            TextureId::default(),
            ColorImage::new([1, 1], vec![Color32::WHITE]),
            TextureOptions::LINEAR,
        )
    }

    /// A painter holding one texture.
    fn painter_with(id: TextureId, image: ColorImage, options: TextureOptions) -> Painter {
        let mut painter = Painter::default();
        let mut delta = TexturesDelta::default();
        delta
            .set
            .insert(id, vec![ImageDelta::full(image, options)].into());
        painter.set_textures(&mut delta);
        painter
    }

    fn paint(painter: &Painter, mesh: Mesh, clip: Rect, size: [usize; 2]) -> Vec<u32> {
        let mut pixels = vec![0; size[0] * size[1]];
        let mut target = Target {
            pixels: &mut pixels,
            width: size[0],
            height: size[1],
        };
        let primitive = ClippedPrimitive {
            clip_rect: clip,
            primitive: Primitive::Mesh(mesh),
        };
        painter.paint(&mut target, &[primitive], 1.0, Color32::WHITE);
        pixels
    }

    fn everywhere() -> Rect {
        Rect::from_min_size(Pos2::ZERO, vec2(1000.0, 1000.0))
    }

    #[test]
    fn an_opaque_rectangle_fills_exactly_its_pixels() {
        let mut mesh = Mesh::default();
        mesh.add_colored_rect(
            Rect::from_min_max(pos2(2.0, 1.0), pos2(6.0, 4.0)),
            Color32::from_rgb(10, 20, 30),
        );
        let pixels = paint(&painter_with_white(), mesh, everywhere(), [8, 6]);
        for y in 0..6 {
            for x in 0..8 {
                let inside = (2..6).contains(&x) && (1..4).contains(&y);
                let want = if inside {
                    0x000A_141E
                } else {
                    WHITE_BACKGROUND
                };
                assert_eq!(pixels[y * 8 + x], want, "pixel ({x}, {y})");
            }
        }
    }

    /// A rectangle as two triangles in an order egui's rectangle shortcut does not use.
    fn rectangle_as_triangles(rect: Rect, uv: Rect, color: Color32, texture: TextureId) -> Mesh {
        let mut mesh = Mesh::with_texture(texture);
        for (pos, uv) in [
            (rect.left_top(), uv.left_top()),
            (rect.right_top(), uv.right_top()),
            (rect.right_bottom(), uv.right_bottom()),
            (rect.left_bottom(), uv.left_bottom()),
        ] {
            mesh.vertices.push(Vertex { pos, uv, color });
        }
        mesh.add_triangle(0, 1, 2);
        mesh.add_triangle(0, 2, 3);
        mesh
    }

    #[test]
    fn a_translucent_rectangle_blends_each_pixel_once_across_its_diagonal() {
        // Half-transparent black (premultiplied) over white: every pixel 128, none darker
        // where the rectangle's two triangles meet.
        let rect = Rect::from_min_max(pos2(0.0, 0.0), pos2(9.0, 7.0));
        let grey = Color32::from_black_alpha(127);
        let white_uv = Rect::from_min_max(Pos2::ZERO, Pos2::ZERO);
        let mesh = rectangle_as_triangles(rect, white_uv, grey, TextureId::default());
        let pixels = paint(&painter_with_white(), mesh, everywhere(), [9, 7]);
        assert!(pixels.iter().all(|&p| p == 0x0080_8080), "{pixels:08X?}");
    }

    #[test]
    fn the_rectangle_shortcut_paints_what_the_triangles_paint() {
        // A 4×3 texture stretched over an odd rectangle, tinted and translucent: the same
        // pixels through the rectangle path and through the general triangle path.
        let id = TextureId::Managed(5);
        let texels = (0..12u8)
            .map(|i| Color32::from_rgba_premultiplied(i * 20, 255 - i * 20, 90, 200))
            .collect();
        let image = ColorImage::new([4, 3], texels);
        let painter = painter_with(id, image, TextureOptions::LINEAR);
        let rect = Rect::from_min_max(pos2(1.3, 0.7), pos2(15.6, 9.2));
        let uv = Rect::from_min_max(pos2(0.1, 0.05), pos2(0.9, 1.0));
        let tint = Color32::from_rgba_premultiplied(200, 180, 160, 220);
        let mut shortcut = Mesh::with_texture(id);
        shortcut.add_rect_with_uv(rect, uv, tint);
        let triangles = rectangle_as_triangles(rect, uv, tint, id);
        let by_rectangle = paint(&painter, shortcut, everywhere(), [17, 11]);
        let by_triangles = paint(&painter, triangles, everywhere(), [17, 11]);
        assert_ne!(by_rectangle, vec![WHITE_BACKGROUND; 17 * 11]);
        for (i, (r, t)) in by_rectangle.iter().zip(&by_triangles).enumerate() {
            let channels = |p: u32| [p >> 16 & 0xFF, p >> 8 & 0xFF, p & 0xFF];
            let close = channels(*r)
                .iter()
                .zip(channels(*t))
                .all(|(a, b)| a.abs_diff(b) <= 1);
            assert!(close, "pixel {i}: rectangle {r:06X}, triangles {t:06X}");
        }
    }

    #[test]
    fn triangles_sharing_an_edge_at_pixel_centres_do_not_overlap() {
        // The shared edge x = 2.5 runs through pixel centres: each of those pixels belongs
        // to one triangle only, so a second coat of translucent black never lands.
        let mut mesh = Mesh::default();
        let grey = Color32::from_black_alpha(127);
        for (x, y) in [
            (0.0, 0.0),
            (2.5, 0.0),
            (2.5, 4.0),
            (0.0, 4.0),
            (5.0, 0.0),
            (5.0, 4.0),
        ] {
            mesh.colored_vertex(pos2(x, y), grey);
        }
        mesh.add_triangle(0, 1, 2);
        mesh.add_triangle(0, 2, 3);
        mesh.add_triangle(1, 4, 5);
        mesh.add_triangle(1, 5, 2);
        let pixels = paint(&painter_with_white(), mesh, everywhere(), [5, 4]);
        assert!(pixels.iter().all(|&p| p == 0x0080_8080), "{pixels:08X?}");
    }

    #[test]
    fn a_jittered_mesh_paints_every_pixel_exactly_once() {
        // A 24×24 grid of cells over 96×96 pixels, inner vertices moved off the grid (a
        // simple generator keeps the test repeatable), each cell split into two triangles,
        // all half-transparent black: any gap stays white, any overlap turns darker.
        let mut seed = 0x2545_F491_u32;
        let mut jitter = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed % 1000) as f32 / 1000.0 * 3.0 - 1.5
        };
        let (cells, cell) = (24, 4.0);
        let mut mesh = Mesh::default();
        for row in 0..=cells {
            for column in 0..=cells {
                let inner = (1..cells).contains(&row) && (1..cells).contains(&column);
                let (dx, dy) = if inner {
                    (jitter(), jitter())
                } else {
                    (0.0, 0.0)
                };
                let at = pos2(column as f32 * cell + dx, row as f32 * cell + dy);
                mesh.colored_vertex(at, Color32::from_black_alpha(127));
            }
        }
        let index = |row: u32, column: u32| row * (cells + 1) + column;
        for row in 0..cells {
            for column in 0..cells {
                let (a, b) = (index(row, column), index(row, column + 1));
                let (c, d) = (index(row + 1, column + 1), index(row + 1, column));
                mesh.add_triangle(a, b, c);
                mesh.add_triangle(a, c, d);
            }
        }
        let pixels = paint(&painter_with_white(), mesh, everywhere(), [96, 96]);
        let wrong: Vec<usize> = (0..pixels.len())
            .filter(|&i| pixels[i] != 0x0080_8080)
            .collect();
        assert!(
            wrong.is_empty(),
            "pixels painted other than once: {wrong:?}"
        );
    }

    #[test]
    fn the_clip_rectangle_limits_the_paint() {
        let mut mesh = Mesh::default();
        mesh.add_colored_rect(everywhere(), Color32::BLACK);
        let clip = Rect::from_min_max(pos2(1.0, 2.0), pos2(3.0, 3.0));
        let pixels = paint(&painter_with_white(), mesh, clip, [4, 4]);
        let black: Vec<usize> = (0..16).filter(|&i| pixels[i] == 0).collect();
        assert_eq!(black, vec![9, 10]);
    }

    #[test]
    fn vertex_colours_are_interpolated_across_a_triangle() {
        // A horizontal ramp from black to white over 10 pixels.
        let mut mesh = Mesh::default();
        let rect = Rect::from_min_max(pos2(0.0, 0.0), pos2(10.0, 1.0));
        mesh.colored_vertex(rect.left_top(), Color32::BLACK);
        mesh.colored_vertex(rect.right_top(), Color32::WHITE);
        mesh.colored_vertex(rect.right_bottom(), Color32::WHITE);
        mesh.colored_vertex(rect.left_bottom(), Color32::BLACK);
        mesh.add_triangle(0, 1, 2);
        mesh.add_triangle(0, 2, 3);
        let pixels = paint(&painter_with_white(), mesh, everywhere(), [10, 1]);
        let reds: Vec<u32> = pixels.iter().map(|p| p >> 16).collect();
        // Pixel centres sit at 0.5, 1.5, ...: 255 * 0.05, 255 * 0.15, ...
        assert_eq!(reds, vec![13, 38, 64, 89, 115, 140, 166, 191, 217, 242]);
    }

    #[test]
    fn textures_are_sampled_tinted_and_patched() {
        let id = TextureId::Managed(7);
        let texels = vec![
            Color32::from_rgb(255, 0, 0),
            Color32::from_rgb(0, 255, 0),
            Color32::from_rgb(0, 0, 255),
            Color32::TRANSPARENT,
        ];
        let image = ColorImage::new([2, 2], texels);
        let mut painter = painter_with(id, image, TextureOptions::NEAREST);

        let draw = |painter: &Painter, tint: Color32| {
            let mut mesh = Mesh::with_texture(id);
            let unit = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
            mesh.add_rect_with_uv(Rect::from_min_size(Pos2::ZERO, vec2(2.0, 2.0)), unit, tint);
            paint(painter, mesh, everywhere(), [2, 2])
        };
        // The transparent texel leaves the white background.
        assert_eq!(
            draw(&painter, Color32::WHITE),
            vec![0x00FF_0000, 0x0000_FF00, 0x0000_00FF, WHITE_BACKGROUND]
        );
        // The vertex colour multiplies the texel: half grey halves the red.
        assert_eq!(draw(&painter, Color32::from_gray(128))[0], 0x0080_0000);

        // A patch at (1, 1) replaces one texel and keeps the others.
        let mut patch = TexturesDelta::default();
        let yellow = ColorImage::new([1, 1], vec![Color32::from_rgb(255, 255, 0)]);
        patch.set.insert(
            id,
            vec![ImageDelta::partial([1, 1], yellow, TextureOptions::NEAREST)].into(),
        );
        painter.set_textures(&mut patch);
        assert_eq!(draw(&painter, Color32::WHITE)[3], 0x00FF_FF00);
        assert_eq!(draw(&painter, Color32::WHITE)[0], 0x00FF_0000);

        let mut free = TexturesDelta::default();
        free.free.insert(id);
        painter.free_textures(&mut free);
        assert_eq!(draw(&painter, Color32::WHITE), vec![WHITE_BACKGROUND; 4]);
    }

    #[test]
    fn linear_textures_blend_neighbouring_texels() {
        let id = TextureId::Managed(3);
        let image = ColorImage::new([2, 1], vec![Color32::BLACK, Color32::WHITE]);
        let painter = painter_with(id, image, TextureOptions::LINEAR);
        // Stretch the 2-texel texture over 4 pixels: centres at texel 0.25, 0.75, 1.25, 1.75,
        // so the middle two mix the texels a quarter and three quarters.
        let mut mesh = Mesh::with_texture(id);
        let unit = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
        mesh.add_rect_with_uv(
            Rect::from_min_size(Pos2::ZERO, vec2(4.0, 1.0)),
            unit,
            Color32::WHITE,
        );
        let reds: Vec<u32> = paint(&painter, mesh, everywhere(), [4, 1])
            .iter()
            .map(|p| p >> 16)
            .collect();
        assert_eq!(reds, vec![0, 64, 191, 255]);
    }

    #[test]
    fn indices_past_the_vertices_are_skipped() {
        let mut mesh = Mesh::default();
        mesh.colored_vertex(pos2(0.0, 0.0), Color32::BLACK);
        mesh.add_triangle(0, 1, 2);
        let pixels = paint(&painter_with_white(), mesh, everywhere(), [2, 2]);
        assert_eq!(pixels, vec![WHITE_BACKGROUND; 4]);
    }
}
