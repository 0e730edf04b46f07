//! What a template may be made of, checked on its compiled form before it is ever rendered.
//!
//! handlebars has no bound of its own on recursion or output: a partial that includes itself
//! (directly, through another partial, or as an inline partial) recurses until the thread's
//! stack overflows, which aborts the process. So every part, and every bundled partial, is
//! compiled here and its syntax tree walked against a closed set of constructs:
//!
//! - no decorators: no inline partials (`{{#*inline}}`) and no `{{* …}}`;
//! - a partial is named literally and is one of the bundled partials; a partial that holds
//!   `{{> @partial-block}}` (a layout) is used only as a partial block (`{{#> layout}}…`), every
//!   other partial only as `{{> name}}`; `@partial-block` is written only in a bundled layout;
//!   partial blocks do not nest; the graph of partials has no cycle;
//! - block helpers are `if`, `unless`, `each`, `with`; value helpers are Messo's own and
//!   `lookup`, `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `and`, `or`, `not`, `len`;
//! - an `each` is never inside another `each`, and never inside the body of a layout block (that
//!   body is assembled in memory before the output limit sees it); such a body writes at most
//!   [`MAX_LAYOUT_VALUES`] values;
//! - nesting (blocks, `else if` links, subexpressions, partials) is at most [`MAX_DEPTH`] deep;
//! - in an HTML body and in the parts of an IO message, every value is escaped: no `{{{x}}}`,
//!   `{{& x}}` or their `~` spellings.
//!
//! Before compiling, a part is at most [`MAX_SOURCE_BYTES`] long and holds at most
//! [`MAX_PARENS`] opening parentheses: handlebars builds nested subexpressions recursively while
//! compiling, before any walk could look at them, and a subexpression needs a `(`. Every other
//! kind of nesting is parsed within the parser's own stack guard, and a tree refused here is
//! taken apart without recursion.

use std::collections::{BTreeMap, BTreeSet};

use handlebars::template::{
    DecoratorTemplate, HelperTemplate, Parameter, Template, TemplateElement,
};

use super::Part;

/// The longest template part, in bytes.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// The most `(` a part may hold (each subexpression needs one; the bundled files use 15 at most).
pub const MAX_PARENS: usize = 128;
/// The most `{{` a part may hold. Every tag starts with one, and handlebars 6.4 compiles in
/// time quadratic in the number of tags (12,000 tags: 0.7 s of CPU in a release build); the
/// bundled files hold 45 at most, in all four parts together.
pub const MAX_TAGS: usize = 512;
/// The deepest nesting of blocks, `else` links, subexpressions and partials.
pub const MAX_DEPTH: usize = 32;
/// The most partial inclusions a part may make, counting those inside partials (each one
/// renders with a copy of the whole context).
pub const MAX_PARTIALS: usize = 32;
/// The most values the body of a layout block may write (the bundled bodies write about 30).
pub const MAX_LAYOUT_VALUES: usize = 256;
/// The longest rendered part, in bytes: the longest bundled e-mail is under 8 KiB and mail
/// readers cut messages past about 100 KB, so this is far above any real notice and keeps what
/// one render may hold in memory small.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;

/// The block helpers a template may open.
pub const BLOCK_HELPERS: [&str; 4] = ["if", "unless", "each", "with"];
/// handlebars' value helpers a template may call (Messo's own are in `helpers::NAMES`).
pub const VALUE_HELPERS: [&str; 11] = [
    "lookup", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not", "len",
];

const PARTIAL_BLOCK: &str = "@partial-block";

/// Why a part cannot be used: where (in the part as written) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl Refusal {
    fn at(pos: Option<(usize, usize)>, message: String) -> Refusal {
        Refusal {
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message,
        }
    }
}

/// Why a source did not compile.
pub enum CompileFailure {
    /// Refused before the parser saw it, or it made the parser panic.
    Refused(Refusal),
    Syntax(handlebars::TemplateError),
}

/// Checks the bounds a source must meet before it is parsed.
pub fn precheck(src: &str) -> Result<(), Refusal> {
    if src.len() > MAX_SOURCE_BYTES {
        return Err(Refusal::at(
            None,
            format!("il testo supera {} KiB", MAX_SOURCE_BYTES / 1024),
        ));
    }
    let at = |i: usize| {
        let before = &src[..i];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((line, column))
    };
    if let Some((i, _)) = src.match_indices('(').nth(MAX_PARENS) {
        return Err(Refusal::at(
            at(i),
            format!("troppe parentesi tonde: al massimo {MAX_PARENS} in una parte"),
        ));
    }
    if let Some((i, _)) = src.match_indices("{{").nth(MAX_TAGS) {
        return Err(Refusal::at(
            at(i),
            format!("troppe espressioni {{{{…}}}}: al massimo {MAX_TAGS} in una parte"),
        ));
    }
    Ok(())
}

/// Compiles `src` after [`precheck`]; a panic in the parser is a refusal, not a crash.
pub fn compile(src: &str) -> Result<Template, CompileFailure> {
    precheck(src).map_err(CompileFailure::Refused)?;
    match std::panic::catch_unwind(|| Template::compile(src)) {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(CompileFailure::Syntax(e)),
        Err(_) => Err(CompileFailure::Refused(Refusal::at(
            None,
            "il modello non può essere letto (errore interno del motore dei modelli)".to_owned(),
        ))),
    }
}

/// Drops a compiled template without recursion: a refused one may be nested thousands deep
/// (a long `else if` chain), more than a thread's stack can drop recursively.
pub fn dismantle(t: Template) {
    let mut todo = vec![t];
    while let Some(mut t) = todo.pop() {
        for e in t.elements.drain(..) {
            let (template, inverse) = match e {
                TemplateElement::HelperBlock(mut h)
                | TemplateElement::Expression(mut h)
                | TemplateElement::HtmlExpression(mut h) => (h.template.take(), h.inverse.take()),
                TemplateElement::DecoratorBlock(mut d)
                | TemplateElement::DecoratorExpression(mut d)
                | TemplateElement::PartialBlock(mut d)
                | TemplateElement::PartialExpression(mut d) => (d.template.take(), None),
                _ => (None, None),
            };
            todo.extend(template);
            todo.extend(inverse);
        }
    }
}

/// The bundled partials, compiled and checked once.
#[derive(Clone, Default)]
pub struct Partials {
    compiled: BTreeMap<String, Template>,
    /// Partials that write `{{> @partial-block}}`: used only as partial blocks.
    layouts: BTreeSet<String>,
}

impl Partials {
    /// Compiles and checks every partial; those refused are left out (every template using one
    /// is then refused) and returned with the reason.
    pub fn new(sources: &BTreeMap<String, String>) -> (Partials, Vec<(String, String)>) {
        let mut p = Partials::default();
        let mut refused = Vec::new();
        for (name, src) in sources {
            match compile(src) {
                Ok(t) => {
                    if mentions_partial_block(&t) {
                        p.layouts.insert(name.clone());
                    }
                    p.compiled.insert(name.clone(), t);
                }
                Err(CompileFailure::Refused(r)) => refused.push((name.clone(), r.message)),
                Err(CompileFailure::Syntax(e)) => refused.push((name.clone(), e.to_string())),
            }
        }
        // Each partial must pass the walk as it is used (a layout as a block, others alone);
        // one that uses a refused partial is refused in turn.
        loop {
            let mut bad = Vec::new();
            for (name, t) in &p.compiled {
                let mut w = Walker::new(&p, Part::Text);
                w.stack.push(name.clone());
                let ctx = Ctx {
                    depth: 1,
                    in_each: false,
                    in_layout_body: false,
                    in_layout: p.layouts.contains(name),
                };
                if let Err(r) = w.elements(t, ctx) {
                    bad.push((name.clone(), r.message));
                }
            }
            if bad.is_empty() {
                break;
            }
            for (name, why) in bad {
                if let Some(t) = p.compiled.remove(&name) {
                    dismantle(t);
                }
                p.layouts.remove(&name);
                refused.push((name, why));
            }
        }
        (p, refused)
    }

    /// The compiled partials, to register.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Template)> {
        self.compiled.iter()
    }
}

/// Whether `t` writes `{{> @partial-block}}` anywhere (walked without recursion).
fn mentions_partial_block(t: &Template) -> bool {
    let mut todo = vec![t];
    while let Some(t) = todo.pop() {
        for e in &t.elements {
            match e {
                TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                    if d.name.as_name() == Some(PARTIAL_BLOCK) {
                        return true;
                    }
                    todo.extend(d.template.as_ref());
                }
                TemplateElement::HelperBlock(h) => {
                    todo.extend(h.template.as_ref());
                    todo.extend(h.inverse.as_ref());
                }
                TemplateElement::DecoratorBlock(d) => todo.extend(d.template.as_ref()),
                _ => {}
            }
        }
    }
    false
}

/// Checks a compiled part against the rules above. `Err`: the part must not be rendered at
/// all. `Ok`: it may be rendered, but each returned refusal still refuses the edit (an
/// unescaped value in an HTML body: the rendered check then shows what it lets through).
pub fn check(t: &Template, part: Part, partials: &Partials) -> Result<Vec<Refusal>, Refusal> {
    let mut w = Walker::new(partials, part);
    w.elements(
        t,
        Ctx {
            depth: 0,
            in_each: false,
            in_layout_body: false,
            in_layout: false,
        },
    )?;
    Ok(w.lints)
}

#[derive(Clone, Copy)]
struct Ctx {
    depth: usize,
    /// Inside the body of an `each`.
    in_each: bool,
    /// Inside the body of a partial block (buffered whole by handlebars).
    in_layout_body: bool,
    /// Walking a bundled layout partial (the only place `@partial-block` may be written).
    in_layout: bool,
}

struct Walker<'a> {
    partials: &'a Partials,
    part: Part,
    /// Partials being walked, outermost first: a name met again is a cycle.
    stack: Vec<String>,
    /// Where, in the part as written, the partial being walked was included.
    origin: Option<(usize, usize)>,
    /// Values written by the layout body being walked.
    layout_values: usize,
    /// Refusals that do not stop the walk.
    lints: Vec<Refusal>,
    /// Partial inclusions met so far.
    included: usize,
}

fn allowed_value_helper(name: &str) -> bool {
    VALUE_HELPERS.contains(&name) || super::helpers::NAMES.contains(&name)
}

impl<'a> Walker<'a> {
    fn new(partials: &'a Partials, part: Part) -> Walker<'a> {
        Walker {
            partials,
            part,
            stack: Vec::new(),
            origin: None,
            layout_values: 0,
            lints: Vec::new(),
            included: 0,
        }
    }

    fn refuse(&self, pos: Option<(usize, usize)>, message: impl Into<String>) -> Refusal {
        let mut message = message.into();
        if let Some(p) = self.stack.last() {
            message = format!("nel modello parziale «{p}»: {message}");
        }
        Refusal::at(self.origin.or(pos), message)
    }

    fn deeper(&self, ctx: Ctx, pos: Option<(usize, usize)>) -> Result<Ctx, Refusal> {
        if ctx.depth + 1 > MAX_DEPTH {
            return Err(self.refuse(
                pos,
                format!(
                    "annidamento troppo profondo: al massimo {MAX_DEPTH} livelli di blocchi, \
                     else, sottoespressioni e modelli parziali"
                ),
            ));
        }
        Ok(Ctx {
            depth: ctx.depth + 1,
            ..ctx
        })
    }

    fn elements(&mut self, t: &Template, ctx: Ctx) -> Result<(), Refusal> {
        for (i, e) in t.elements.iter().enumerate() {
            let pos = t.mapping.get(i).map(|m| (m.0, m.1));
            self.element(e, pos, ctx)?;
        }
        Ok(())
    }

    fn element(
        &mut self,
        e: &TemplateElement,
        pos: Option<(usize, usize)>,
        ctx: Ctx,
    ) -> Result<(), Refusal> {
        match e {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => Ok(()),
            TemplateElement::Expression(h) => self.value(h, pos, ctx),
            TemplateElement::HtmlExpression(h) => {
                let raw = match self.part {
                    Part::Html => Some(
                        "niente valori senza escape ({{{…}}}, {{& …}}): nel corpo HTML ogni \
                         valore va scritto con {{…}}",
                    ),
                    Part::IoSubject | Part::IoMarkdown => Some(
                        "niente valori senza escape ({{{…}}}, {{& …}}): nei testi per l'app IO \
                         ogni valore va scritto con {{…}}",
                    ),
                    Part::Subject | Part::Text | Part::Sms => None,
                };
                if let Some(why) = raw {
                    let r = self.refuse(pos, why);
                    self.lints.push(r);
                }
                self.value(h, pos, ctx)
            }
            TemplateElement::HelperBlock(h) => self.block(h, pos, ctx),
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                Err(self.refuse(
                    pos,
                    "niente decoratori né modelli parziali in linea ({{#*inline}}, {{* …}}): \
                     si usano solo i modelli parziali forniti",
                ))
            }
            TemplateElement::PartialExpression(d) => self.partial(d, false, pos, ctx),
            TemplateElement::PartialBlock(d) => self.partial(d, true, pos, ctx),
            _ => Err(self.refuse(pos, "costrutto del modello non ammesso")),
        }
    }

    /// `{{x}}`, `{{helper args}}`.
    fn value(
        &mut self,
        h: &HelperTemplate,
        pos: Option<(usize, usize)>,
        ctx: Ctx,
    ) -> Result<(), Refusal> {
        if ctx.in_layout_body {
            self.layout_values += 1;
            if self.layout_values > MAX_LAYOUT_VALUES {
                return Err(self.refuse(
                    pos,
                    format!(
                        "il corpo di un blocco di impaginazione scrive al massimo \
                         {MAX_LAYOUT_VALUES} valori"
                    ),
                ));
            }
        }
        self.call(h, pos, ctx)
    }

    /// Checks a helper call (or a plain variable) and its arguments.
    fn call(
        &mut self,
        h: &HelperTemplate,
        pos: Option<(usize, usize)>,
        ctx: Ctx,
    ) -> Result<(), Refusal> {
        let is_call = h.block || !h.params.is_empty() || !h.hash.is_empty();
        if is_call {
            match &h.name {
                Parameter::Name(n) if allowed_value_helper(n) => {}
                Parameter::Name(n) => {
                    return Err(self.refuse(pos, format!("funzione non ammessa «{n}»")));
                }
                _ => return Err(self.refuse(pos, "funzione con un nome non letterale")),
            }
        } else if !matches!(h.name, Parameter::Path(_) | Parameter::Name(_)) {
            return Err(self.refuse(pos, "espressione non ammessa"));
        }
        self.params(h.params.iter().chain(h.hash.values()), pos, ctx)
    }

    fn params<'p>(
        &mut self,
        params: impl Iterator<Item = &'p Parameter>,
        pos: Option<(usize, usize)>,
        ctx: Ctx,
    ) -> Result<(), Refusal> {
        for p in params {
            match p {
                Parameter::Path(_) | Parameter::Literal(_) | Parameter::Name(_) => {}
                Parameter::Subexpression(s) => {
                    let inner = self.deeper(ctx, pos)?;
                    match s.as_element() {
                        TemplateElement::Expression(h) => self.call(h, pos, inner)?,
                        _ => return Err(self.refuse(pos, "sottoespressione non ammessa")),
                    }
                }
                _ => return Err(self.refuse(pos, "argomento non ammesso")),
            }
        }
        Ok(())
    }

    /// `{{#if}}…{{else if}}…{{else}}…{{/if}}`, `{{#each}}`, `{{#with}}`, `{{#unless}}`.
    fn block(
        &mut self,
        h: &HelperTemplate,
        pos: Option<(usize, usize)>,
        ctx: Ctx,
    ) -> Result<(), Refusal> {
        let name = match &h.name {
            Parameter::Name(n) if BLOCK_HELPERS.contains(&n.as_str()) => n.as_str(),
            Parameter::Name(n) => {
                return Err(self.refuse(
                    pos,
                    format!("blocco non ammesso «{n}»: si usano if, unless, each e with"),
                ));
            }
            _ => return Err(self.refuse(pos, "blocco con un nome non letterale")),
        };
        let each = name == "each";
        if each && ctx.in_each {
            return Err(self.refuse(pos, "un {{#each}} dentro un altro {{#each}} non è ammesso"));
        }
        if each && ctx.in_layout_body {
            return Err(self.refuse(
                pos,
                "niente {{#each}} dentro un blocco di impaginazione ({{#> …}})",
            ));
        }
        self.params(h.params.iter().chain(h.hash.values()), pos, ctx)?;
        let inner = self.deeper(ctx, pos)?;
        if let Some(t) = &h.template {
            let body = Ctx {
                in_each: ctx.in_each || each,
                ..inner
            };
            self.elements(t, body)?;
        }
        if let Some(t) = &h.inverse {
            // An `else if` is a block inside the inverse: one more level, as it renders.
            self.elements(t, inner)?;
        }
        Ok(())
    }

    /// `{{> name}}` and `{{#> layout}}…{{/layout}}`.
    fn partial(
        &mut self,
        d: &DecoratorTemplate,
        block: bool,
        pos: Option<(usize, usize)>,
        ctx: Ctx,
    ) -> Result<(), Refusal> {
        let name = match &d.name {
            Parameter::Name(n) => n.as_str(),
            _ => {
                return Err(self.refuse(
                    pos,
                    "il nome di un modello parziale va scritto per esteso (niente nomi calcolati)",
                ));
            }
        };
        self.params(d.params.iter().chain(d.hash.values()), pos, ctx)?;
        if name == PARTIAL_BLOCK {
            if block || !ctx.in_layout {
                return Err(self.refuse(
                    pos,
                    "@partial-block si usa solo nei modelli parziali di impaginazione forniti",
                ));
            }
            return Ok(());
        }
        let (t, layout) = self.resolve(name, block, pos, ctx)?;
        let inner = self.deeper(ctx, pos)?;
        if let Some(body) = &d.template {
            let before = self.layout_values;
            self.layout_values = 0;
            self.elements(
                body,
                Ctx {
                    in_layout_body: true,
                    ..inner
                },
            )?;
            self.layout_values = before;
        }
        let origin = self.origin;
        if self.stack.is_empty() {
            self.origin = pos;
        }
        self.stack.push(name.to_owned());
        let r = self.elements(
            t,
            Ctx {
                in_layout: layout,
                ..inner
            },
        );
        self.stack.pop();
        self.origin = origin;
        r
    }

    /// The partial `name` may be included here (`block`: as a layout): it exists, is not
    /// already being included, is used as what it is, and the budget allows one more. Returns
    /// it and whether it is a layout.
    fn resolve(
        &mut self,
        name: &str,
        block: bool,
        pos: Option<(usize, usize)>,
        ctx: Ctx,
    ) -> Result<(&'a Template, bool), Refusal> {
        self.included += 1;
        if self.included > MAX_PARTIALS {
            return Err(self.refuse(
                pos,
                format!("al massimo {MAX_PARTIALS} modelli parziali in una parte"),
            ));
        }
        let partials = self.partials;
        let Some(t) = partials.compiled.get(name) else {
            return Err(self.refuse(pos, format!("il modello parziale «{name}» non esiste")));
        };
        if self.stack.iter().any(|s| s == name) {
            return Err(self.refuse(
                pos,
                format!("il modello parziale «{name}» richiama se stesso"),
            ));
        }
        let layout = partials.layouts.contains(name);
        match (block, layout) {
            (true, false) => {
                return Err(self.refuse(
                    pos,
                    format!(
                        "«{name}» non è un modello di impaginazione: si usa come {{{{> {name}}}}}"
                    ),
                ));
            }
            (false, true) => {
                return Err(self.refuse(
                    pos,
                    format!("«{name}» è un modello di impaginazione: si usa come {{{{#> {name}}}}}…{{{{/{name}}}}}"),
                ));
            }
            _ => {}
        }
        if block && (ctx.in_layout_body || ctx.in_layout) {
            return Err(self.refuse(pos, "i blocchi di impaginazione non si annidano"));
        }
        Ok((t, layout))
    }
}
