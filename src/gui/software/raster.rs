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
        let fill = pack(background.to_array());
        target.pixels.fill(fill);
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
    for triangle in mesh.indices.chunks_exact(3) {
        let corner = |index: u32| {
            mesh.vertices
                .get(index as usize)
                .map(|vertex| Corner::new(vertex, pixels_per_point, texture))
        };
        if let (Some(a), Some(b), Some(c)) = (
            corner(triangle[0]),
            corner(triangle[1]),
            corner(triangle[2]),
        ) {
            fill_triangle(target, clip, [a, b, c], texture);
        }
    }
}

/// One edge's test: `at(px, py) >= 0` on the inside. A pixel exactly on the edge belongs to
/// one of the two triangles sharing it, chosen by the edge's direction.
struct Edge {
    x: f32,
    y: f32,
    dx: f32,
    dy: f32,
    owns_ties: bool,
}

impl Edge {
    fn new(from: &Corner, to: &Corner) -> Edge {
        let (dx, dy) = (to.x - from.x, to.y - from.y);
        Edge {
            x: from.x,
            y: from.y,
            dx,
            dy,
            owns_ties: dy > 0.0 || (dy == 0.0 && dx > 0.0),
        }
    }

    fn at(&self, px: f32, py: f32) -> f32 {
        self.dx * (py - self.y) - self.dy * (px - self.x)
    }

    fn covers(&self, value: f32) -> bool {
        value > 0.0 || (value == 0.0 && self.owns_ties)
    }

    /// Narrows `lo..hi` (pixel-centre x) to where this edge can cover row `py`.
    fn narrow(&self, py: f32, lo: &mut f32, hi: &mut f32) {
        // at(px) = intercept - dy * px
        let intercept = self.dx * (py - self.y) + self.dy * self.x;
        if self.dy < 0.0 {
            *lo = lo.max(intercept / self.dy);
        } else if self.dy > 0.0 {
            *hi = hi.min(intercept / self.dy);
        } else if intercept < 0.0 || (intercept == 0.0 && !self.owns_ties) {
            *hi = f32::NEG_INFINITY;
        }
    }
}

fn fill_triangle(target: &mut Target<'_>, clip: &ClipBox, corners: [Corner; 3], tex: &Texture) {
    let [a, mut b, mut c] = corners;
    let mut area = Edge::new(&a, &b).at(c.x, c.y);
    if area.abs() < 1e-6 {
        return;
    }
    if area < 0.0 {
        std::mem::swap(&mut b, &mut c);
        area = -area;
    }
    let edges = [Edge::new(&b, &c), Edge::new(&c, &a), Edge::new(&a, &b)];
    let min_y = a.y.min(b.y).min(c.y).floor().max(clip.y0 as f32) as usize;
    let max_y = (a.y.max(b.y).max(c.y).ceil().max(0.0) as usize).min(clip.y1);
    let min_x = a.x.min(b.x).min(c.x).floor().max(clip.x0 as f32) as usize;
    let max_x = (a.x.max(b.x).max(c.x).ceil().max(0.0) as usize).min(clip.x1);
    // Most of egui's triangles (panels, frames, the font atlas's white texel) are one colour.
    let flat = (a.color == b.color && a.color == c.color && a.u == b.u && a.u == c.u)
        && (a.v == b.v && a.v == c.v);
    let flat_color = shade(a.color, tex.sample(a.u, a.v));
    if flat && flat_color[3] == 0.0 && flat_color[..3] == [0.0; 3] {
        return;
    }
    let flat_color = to_bytes(flat_color);

    for y in min_y..max_y {
        let py = y as f32 + 0.5;
        let (mut lo, mut hi) = (min_x as f32, max_x as f32);
        for edge in &edges {
            edge.narrow(py, &mut lo, &mut hi);
        }
        if lo > hi {
            continue;
        }
        // One pixel of slack each side for rounding; the exact test below decides.
        let start = ((lo - 0.5).floor() - 1.0).max(min_x as f32) as usize;
        let end = (((hi - 0.5).ceil() + 2.0).max(0.0) as usize).min(max_x);
        let row = &mut target.pixels[y * target.width..(y + 1) * target.width];
        for (x, pixel) in row.iter_mut().enumerate().take(end).skip(start) {
            let px = x as f32 + 0.5;
            let w = [
                edges[0].at(px, py),
                edges[1].at(px, py),
                edges[2].at(px, py),
            ];
            if !(edges[0].covers(w[0]) && edges[1].covers(w[1]) && edges[2].covers(w[2])) {
                continue;
            }
            let source = if flat {
                flat_color
            } else {
                let [wa, wb, wc] = w.map(|weight| weight / area);
                let mix = |pa: f32, pb: f32, pc: f32| wa * pa + wb * pb + wc * pc;
                let color = std::array::from_fn(|i| mix(a.color[i], b.color[i], c.color[i]));
                to_bytes(shade(
                    color,
                    tex.sample(mix(a.u, b.u, c.u), mix(a.v, b.v, c.v)),
                ))
            };
            *pixel = blend(*pixel, source);
        }
    }
}

impl Texture {
    /// The texel colour (0..=255 each) at texture position `u`, `v` in texels, clamped to the
    /// edge as egui's textures are.
    fn sample(&self, u: f32, v: f32) -> [f32; 4] {
        let texel = |x: usize, y: usize| self.texels[y * self.width + x].to_array().map(f32::from);
        let clamp = |value: f32, size: usize| (value.max(0.0) as usize).min(size - 1);
        if !self.linear {
            return texel(clamp(u, self.width), clamp(v, self.height));
        }
        let (x, y) = (u - 0.5, v - 0.5);
        let (fx, fy) = (x - x.floor(), y - y.floor());
        let (x0, y0) = (clamp(x.floor(), self.width), clamp(y.floor(), self.height));
        let (x1, y1) = (
            clamp(x.floor() + 1.0, self.width),
            clamp(y.floor() + 1.0, self.height),
        );
        let (t00, t10, t01, t11) = (texel(x0, y0), texel(x1, y0), texel(x0, y1), texel(x1, y1));
        std::array::from_fn(|i| {
            let top = t00[i] + (t10[i] - t00[i]) * fx;
            let bottom = t01[i] + (t11[i] - t01[i]) * fx;
            top + (bottom - top) * fy
        })
    }
}

/// Vertex colour times texture sample, both premultiplied, in gamma space (egui's shader).
fn shade(color: [f32; 4], texel: [f32; 4]) -> [f32; 4] {
    std::array::from_fn(|i| color[i] * texel[i] / 255.0)
}

fn to_bytes(color: [f32; 4]) -> [u8; 4] {
    color.map(|channel| channel.round().clamp(0.0, 255.0) as u8)
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
        let mut painter = Painter::default();
        let mut delta = TexturesDelta::default();
        let white = ColorImage::new([1, 1], vec![Color32::WHITE]);
        delta.set.insert(
            TextureId::default(),
            vec![ImageDelta::full(white, TextureOptions::LINEAR)].into(),
        );
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

    #[test]
    fn a_translucent_rectangle_blends_each_pixel_once_across_its_diagonal() {
        // Half-transparent black (premultiplied) over white: every pixel 128, none darker
        // where the rectangle's two triangles meet.
        let mut mesh = Mesh::default();
        mesh.add_colored_rect(
            Rect::from_min_max(pos2(0.0, 0.0), pos2(9.0, 7.0)),
            Color32::from_black_alpha(127),
        );
        let pixels = paint(&painter_with_white(), mesh, everywhere(), [9, 7]);
        assert!(pixels.iter().all(|&p| p == 0x0080_8080), "{pixels:08X?}");
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
        let mut painter = Painter::default();
        let id = TextureId::Managed(7);
        let texels = vec![
            Color32::from_rgb(255, 0, 0),
            Color32::from_rgb(0, 255, 0),
            Color32::from_rgb(0, 0, 255),
            Color32::TRANSPARENT,
        ];
        let mut delta = TexturesDelta::default();
        let image = ColorImage::new([2, 2], texels);
        delta.set.insert(
            id,
            vec![ImageDelta::full(image, TextureOptions::NEAREST)].into(),
        );
        painter.set_textures(&mut delta);

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
        let mut painter = Painter::default();
        let id = TextureId::Managed(3);
        let image = ColorImage::new([2, 1], vec![Color32::BLACK, Color32::WHITE]);
        let mut delta = TexturesDelta::default();
        delta.set.insert(
            id,
            vec![ImageDelta::full(image, TextureOptions::LINEAR)].into(),
        );
        painter.set_textures(&mut delta);
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
