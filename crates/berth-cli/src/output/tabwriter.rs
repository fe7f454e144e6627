//! Go's `text/tabwriter`, which ctr aligns its tables with.
//!
//! Text is cut into cells at tabs; the text after a line's last tab is not
//! part of any column. A *column block* is a run of consecutive lines that
//! all have a cell in that column; every cell of a block is padded to the
//! block's widest cell plus `padding` (at least `minwidth`). A line with
//! fewer cells ends the blocks to its right, which is why ctr's headers end
//! with a tab: it makes the last column a real column, padded like the rest.
//!
//! Only what ctr uses is implemented: left alignment, a space or tab pad
//! character (tab stops every 8 columns) and no flags.

/// A tab writer's settings (Go's `tabwriter.NewWriter(w, minwidth,
/// tabwidth, padding, ' ', 0)`; tabwidth only matters for tab padding,
/// which ctr does not use).
#[derive(Clone, Copy, Debug)]
pub struct TabWriter {
    minwidth: usize,
    padding: usize,
    /// Pad with tabs to the next multiple of 8 instead of spaces.
    tabs: bool,
}

/// One cell: its text and its width in characters.
struct Cell<'a> {
    text: &'a str,
    width: usize,
}

impl TabWriter {
    /// ctr's plugin and container tables: `NewWriter(os.Stdout, 4, 8, 4, ' ', 0)`.
    pub const WIDE: TabWriter = TabWriter {
        minwidth: 4,
        padding: 4,
        tabs: false,
    };

    /// ctr's namespace table: `NewWriter(os.Stdout, 1, 8, 1, ' ', 0)`.
    pub const NARROW: TabWriter = TabWriter {
        minwidth: 1,
        padding: 1,
        tabs: false,
    };

    /// ctr's content tables: `NewWriter(os.Stdout, 1, 8, 1, '\t', 0)`.
    pub const TABS: TabWriter = TabWriter {
        minwidth: 1,
        padding: 1,
        tabs: true,
    };

    /// Aligns `text` as Go's tab writer would when it is written and
    /// flushed.
    pub fn format(&self, text: &str) -> String {
        let lines: Vec<Vec<Cell<'_>>> = text
            .split('\n')
            .map(|line| {
                line.split('\t')
                    .map(|text| Cell {
                        text,
                        width: text.chars().count(),
                    })
                    .collect()
            })
            .collect();
        let mut out = String::with_capacity(text.len() * 2);
        let mut widths = Vec::new();
        self.format_block(&mut out, &lines, &mut widths, 0, lines.len());
        out
    }

    /// Go's `Writer.format`: lays out lines `line0..line1`, whose columns
    /// left of `widths.len()` already have their widths.
    fn format_block(
        &self,
        out: &mut String,
        lines: &[Vec<Cell<'_>>],
        widths: &mut Vec<usize>,
        mut line0: usize,
        line1: usize,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // A block of lines with a cell in `column` starts here.
            write_lines(out, lines, widths, line0, this, self.tabs);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 && column + 1 < lines[this].len() {
                width = width.max(lines[this][column].width + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format_block(out, lines, widths, line0, this);
            widths.pop();
            line0 = this;
        }
        write_lines(out, lines, widths, line0, line1, self.tabs);
    }
}

/// Go's `Writer.writeLines`: prints lines `line0..line1`, padding the cells
/// of known columns; every line but the text's last ends with a newline.
fn write_lines(
    out: &mut String,
    lines: &[Vec<Cell<'_>>],
    widths: &[usize],
    line0: usize,
    line1: usize,
    tabs: bool,
) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell.text);
            if let Some(&width) = widths.get(j) {
                pad(out, cell.width, width, tabs);
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

/// Go's `writePadding`: spaces up to `width`, or tabs up to the next tab
/// stop at or after `width`.
fn pad(out: &mut String, text_width: usize, width: usize, tabs: bool) {
    const TAB_WIDTH: usize = 8;
    if tabs {
        let width = width.div_ceil(TAB_WIDTH) * TAB_WIDTH;
        let n = width.saturating_sub(text_width);
        out.extend(std::iter::repeat_n('\t', n.div_ceil(TAB_WIDTH)));
    } else {
        out.extend(std::iter::repeat_n(' ', width.saturating_sub(text_width)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_tab_pads_the_last_column() {
        let text = "TYPE\tID\tSTATUS\t\nio.containerd.content.v1\tcontent\tok\t\n";
        assert_eq!(
            TabWriter::WIDE.format(text),
            "TYPE                        ID         STATUS    \n\
             io.containerd.content.v1    content    ok        \n"
        );
    }

    #[test]
    fn narrow_table_matches_ctr_namespaces() {
        let text = "NAME\tLABELS\t\nbar\t\t\nfoo\ta=b,c=d\t\n";
        assert_eq!(
            TabWriter::NARROW.format(text),
            "NAME LABELS  \nbar          \nfoo  a=b,c=d \n"
        );
        assert_eq!(
            TabWriter::NARROW.format("NAME\tLABELS\t\n"),
            "NAME LABELS \n"
        );
    }

    #[test]
    fn minwidth_applies_to_short_columns() {
        let tw = TabWriter {
            minwidth: 4,
            padding: 1,
            tabs: false,
        };
        assert_eq!(tw.format("a\tb\nab\tc\n"), "a   b\nab  c\n");
        assert_eq!(TabWriter::WIDE.format("a\tb\n"), "a    b\n");
    }

    #[test]
    fn a_line_without_tabs_ends_column_blocks() {
        let text = "a\tb\nlong text\nccccc\td\n";
        assert_eq!(TabWriter::NARROW.format(text), "a b\nlong text\nccccc d\n");
    }

    #[test]
    fn nested_blocks_get_their_own_widths() {
        // Column 1 ends at the second line (it has only two cells), so the
        // third and fourth lines form a new block for it.
        let text = "x\tshort\tend\ny\t\nz\tvery long\tend\nw\ta\tend\n";
        assert_eq!(
            TabWriter::NARROW.format(text),
            "x short end\ny \nz very long end\nw a         end\n"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        assert_eq!(TabWriter::NARROW.format("é\tx\nab\ty\n"), "é  x\nab y\n");
    }

    #[test]
    fn tab_padding_matches_ctr_content_ls() {
        // Captured from `ctr content ls` (containerd 1.6).
        let digest = format!("sha256:{}", "a".repeat(64));
        let text = format!(
            "DIGEST\tSIZE\tAGE\tLABELS\n{digest}\t1.987MB\t15 seconds\t-\n{digest}\t3B\tLess than a second\t-\n"
        );
        assert_eq!(
            TabWriter::TABS.format(&text),
            format!(
                "DIGEST\t\t\t\t\t\t\t\t\tSIZE\tAGE\t\t\tLABELS\n\
                 {digest}\t1.987MB\t15 seconds\t\t-\n\
                 {digest}\t3B\tLess than a second\t-\n"
            )
        );
    }

    #[test]
    fn text_without_final_newline_is_kept() {
        assert_eq!(TabWriter::NARROW.format("a\tb"), "a b");
        assert_eq!(TabWriter::NARROW.format(""), "");
    }
}
