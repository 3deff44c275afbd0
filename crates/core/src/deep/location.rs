//! Location files: where deep-zoom users share a view. Kalles Fraktaler's
//! `.kfr` is lines of `Key: value`; a view is its `Re`, `Im`, `Zoom` and
//! `Iterations` (the rest, colours and the like, is KF's own and ignored).

use thiserror::Error;

use super::view::{DeepView, ViewError};

/// A view and its iteration budget, as a location file gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub view: DeepView,
    /// The file's `Iterations`, if it has one.
    pub iterations: Option<u64>,
}

/// Why a location file was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LocationError {
    #[error("a Kalles Fraktaler location needs a `{0}:` line")]
    Missing(&'static str),
    #[error("`Iterations:` must be a whole number, got {0:?}")]
    Iterations(String),
    #[error(transparent)]
    View(#[from] ViewError),
}

impl Location {
    /// Reads a Kalles Fraktaler `.kfr` file's text.
    pub fn from_kfr(text: &str) -> Result<Location, LocationError> {
        let field = |name: &'static str| {
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim())
        };
        let re = field("Re").ok_or(LocationError::Missing("Re"))?;
        let im = field("Im").ok_or(LocationError::Missing("Im"))?;
        let zoom = field("Zoom").ok_or(LocationError::Missing("Zoom"))?;
        let iterations = field("Iterations")
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| LocationError::Iterations(v.chars().take(40).collect()))
            })
            .transpose()?;
        Ok(Location {
            view: DeepView::parse(re, im, zoom)?,
            iterations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kfr_file_gives_its_view_and_budget() {
        // The head of Kalles Fraktaler's benchmarks/1e14.kfr (its first
        // lines; the rest is colouring).
        let kfr = "Re: -1.759817130804847813610825010561798238243999999999999999999800\r\n\
                   Im: -0.012593310799749865383746631843264858450340000000000000000000\r\n\
                   Zoom: 1.00e014\r\nIterations: 4036\r\nIterDiv: 1.000000\r\nSmooth: 1\r\n";
        let loc = Location::from_kfr(kfr).unwrap();
        assert_eq!(
            loc.view.re(),
            "-1.7598171308048478136108250105617982382439999999999999999998"
        );
        assert_eq!(
            loc.view.im(),
            "-0.01259331079974986538374663184326485845034"
        );
        assert_eq!(loc.view.zoom(), "1e14");
        assert_eq!(loc.iterations, Some(4036));
    }

    #[test]
    fn a_file_without_a_view_is_refused_by_name() {
        assert_eq!(
            Location::from_kfr("Re: 0\nZoom: 1\n"),
            Err(LocationError::Missing("Im"))
        );
        assert!(matches!(
            Location::from_kfr("Re: 0\nIm: 0\nZoom: 1\nIterations: many\n"),
            Err(LocationError::Iterations(_))
        ));
        let err = Location::from_kfr("Re: x\nIm: 0\nZoom: 1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "center.re must be a decimal number like -1.25 or 3.5e-7, got \"x\""
        );
    }
}
