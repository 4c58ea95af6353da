//! Frames without a window: egui passes painted into memory by the software renderer, for
//! tests that look at pixels and for the frame-cost benchmark.

use eframe::egui::epaint::ClippedPrimitive;
use eframe::egui::epaint::textures::TexturesDelta;
use eframe::egui::{self, FullOutput, Rect, pos2, vec2};

use super::raster::{Painter, Target};
use crate::gui::app::FONT_ATLAS_MAX_SIDE;

/// A window-sized pixel buffer with its own egui context.
pub struct Offscreen {
    /// The context the passes run in (set the theme here).
    pub ctx: egui::Context,
    painter: Painter,
    pixels: Vec<u32>,
    width: usize,
    height: usize,
    pixels_per_point: f32,
}

impl Offscreen {
    /// A `width` × `height` pixel frame at `pixels_per_point`.
    pub fn new([width, height]: [usize; 2], pixels_per_point: f32) -> Offscreen {
        Offscreen {
            ctx: egui::Context::default(),
            painter: Painter::default(),
            pixels: vec![0; width * height],
            width,
            height,
            pixels_per_point,
        }
    }

    /// Runs one egui pass of `ui` over the whole frame.
    pub fn run(&mut self, ui: impl FnMut(&mut egui::Ui)) -> FullOutput {
        let points = vec2(self.width as f32, self.height as f32) / self.pixels_per_point;
        let mut input = egui::RawInput {
            screen_rect: Some(Rect::from_min_size(pos2(0.0, 0.0), points)),
            max_texture_side: Some(FONT_ATLAS_MAX_SIDE),
            ..Default::default()
        };
        input
            .viewports
            .entry(egui::ViewportId::ROOT)
            .or_default()
            .native_pixels_per_point = Some(self.pixels_per_point);
        self.ctx.run_ui(input, ui)
    }

    /// Turns a pass's shapes into triangles (taking them out of `output`).
    pub fn tessellate(&self, output: &mut FullOutput) -> Vec<ClippedPrimitive> {
        let shapes = std::mem::take(&mut output.shapes);
        self.ctx.tessellate(shapes, output.pixels_per_point)
    }

    /// Applies the texture changes and paints the triangles over the panel colour.
    pub fn paint(&mut self, primitives: &[ClippedPrimitive], textures: &mut TexturesDelta) {
        self.painter.set_textures(textures);
        let mut target = Target {
            pixels: &mut self.pixels,
            width: self.width,
            height: self.height,
        };
        let background = self.ctx.global_style().visuals.panel_fill;
        self.painter
            .paint(&mut target, primitives, self.pixels_per_point, background);
        self.painter.free_textures(textures);
    }

    /// One whole frame: pass, tessellation, paint.
    pub fn frame(&mut self, ui: impl FnMut(&mut egui::Ui)) {
        let mut output = self.run(ui);
        let primitives = self.tessellate(&mut output);
        self.paint(&primitives, &mut output.textures_delta);
    }

    /// The last frame's pixels, `0x00RRGGBB`, row by row.
    pub fn pixels(&self) -> &[u32] {
        &self.pixels
    }
}
