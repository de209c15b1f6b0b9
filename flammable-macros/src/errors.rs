//! Errors gathered over the whole block, so that one build reports every mistake.

pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn new() -> Self {
        Errors(None)
    }

    pub fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub fn into_result(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}
