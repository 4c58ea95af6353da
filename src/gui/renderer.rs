//! Which renderer draws the window: OpenGL where there is a GPU, the CPU otherwise.

use std::fs::OpenOptions;
use std::path::Path;

/// The environment variable that overrides the choice (`opengl` or `software`).
pub const RENDERER_VARIABLE: &str = "ISP_TOOLBOX_RENDERER";

/// How the window is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    /// eframe's OpenGL painter: a GPU driver, or Mesa's software OpenGL.
    OpenGl,
    /// Our own CPU painter into the window's pixel buffer (see [`crate::gui::software`]).
    Software,
}

impl Renderer {
    /// The renderer for this machine: the variable's choice if set, else OpenGL when a GPU is
    /// present. Errors name the variable and what it accepts.
    pub fn choose(variable: Option<&str>, has_gpu: bool) -> Result<Renderer, String> {
        let name = variable.map(|name| name.trim().to_ascii_lowercase());
        match name.as_deref() {
            None | Some("") | Some("auto") => Ok(if has_gpu {
                Renderer::OpenGl
            } else {
                Renderer::Software
            }),
            Some("opengl" | "gl") => Ok(Renderer::OpenGl),
            Some("software" | "cpu") => Ok(Renderer::Software),
            Some(_) => Err(format!(
                "{RENDERER_VARIABLE}={:?} is not a renderer; use opengl, software or auto",
                variable.unwrap_or_default()
            )),
        }
    }

    /// [`Renderer::choose`] with this process's environment and hardware.
    pub fn for_this_machine() -> Result<Renderer, String> {
        let variable = std::env::var(RENDERER_VARIABLE).ok();
        Renderer::choose(variable.as_deref(), has_gpu())
    }
}

/// Whether a GPU driver is likely: on Linux a DRM render node (`/dev/dri/renderD*`) this user
/// may open; Windows and macOS always have an OpenGL driver.
fn has_gpu() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let Ok(entries) = Path::new("/dev/dri").read_dir() else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry.file_name().to_string_lossy().starts_with("renderD")
            && OpenOptions::new()
                .read(true)
                .write(true)
                .open(entry.path())
                .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_gets_opengl_and_no_gpu_the_software_renderer() {
        assert_eq!(Renderer::choose(None, true), Ok(Renderer::OpenGl));
        assert_eq!(Renderer::choose(None, false), Ok(Renderer::Software));
        assert_eq!(
            Renderer::choose(Some("auto"), false),
            Ok(Renderer::Software)
        );
        assert_eq!(Renderer::choose(Some(""), true), Ok(Renderer::OpenGl));
    }

    #[test]
    fn the_variable_overrides_the_hardware() {
        assert_eq!(
            Renderer::choose(Some("software"), true),
            Ok(Renderer::Software)
        );
        assert_eq!(
            Renderer::choose(Some("OpenGL"), false),
            Ok(Renderer::OpenGl)
        );
        assert_eq!(
            Renderer::choose(Some(" cpu "), true),
            Ok(Renderer::Software)
        );
    }

    #[test]
    fn an_unknown_renderer_is_an_error_naming_the_choices() {
        let error = Renderer::choose(Some("vulkan"), true).unwrap_err();
        assert!(error.contains("ISP_TOOLBOX_RENDERER=\"vulkan\""), "{error}");
        assert!(error.contains("opengl, software or auto"), "{error}");
    }
}
